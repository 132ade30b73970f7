#include "runtime/events/event_bus.h"

#include <thread>

#include "gtest/gtest.h"

namespace berth::events {
namespace {

ContainerEvent Event(ContainerEventType type, const std::string& id) {
  return {.type = type, .container_id = id, .pod_id = "pod", .created_at_ns = 1};
}

TEST(EventBusTest, EverySubscriberGetsEveryEventInOrder) {
  EventBus bus;
  auto a = bus.Subscribe();
  auto b = bus.Subscribe();
  bus.Publish(Event(ContainerEventType::kCreated, "c1"));
  bus.Publish(Event(ContainerEventType::kStarted, "c1"));
  for (auto* sub : {a.get(), b.get()}) {
    ContainerEvent e;
    ASSERT_EQ(sub->Next(&e, absl::ZeroDuration()), NextResult::kEvent);
    EXPECT_EQ(e.type, ContainerEventType::kCreated);
    ASSERT_EQ(sub->Next(&e, absl::ZeroDuration()), NextResult::kEvent);
    EXPECT_EQ(e.type, ContainerEventType::kStarted);
    EXPECT_EQ(sub->Next(&e, absl::Milliseconds(1)), NextResult::kTimeout);
  }
}

TEST(EventBusTest, ASubscriberOnlySeesEventsAfterItSubscribed) {
  EventBus bus;
  bus.Publish(Event(ContainerEventType::kCreated, "early"));
  auto sub = bus.Subscribe();
  ContainerEvent e;
  EXPECT_EQ(sub->Next(&e, absl::ZeroDuration()), NextResult::kTimeout);
}

TEST(EventBusTest, NextWakesUpForAnEventPublishedWhileWaiting) {
  EventBus bus;
  auto sub = bus.Subscribe();
  std::thread publisher([&] {
    absl::SleepFor(absl::Milliseconds(20));
    bus.Publish(Event(ContainerEventType::kStopped, "c1"));
  });
  ContainerEvent e;
  EXPECT_EQ(sub->Next(&e, absl::Seconds(30)), NextResult::kEvent);
  EXPECT_EQ(e.container_id, "c1");
  publisher.join();
}

TEST(EventBusTest, AFullQueueDropsTheOldestAndCountsIt) {
  EventBus bus;
  auto sub = bus.Subscribe(/*capacity=*/2);
  bus.Publish(Event(ContainerEventType::kCreated, "c1"));
  bus.Publish(Event(ContainerEventType::kCreated, "c2"));
  bus.Publish(Event(ContainerEventType::kCreated, "c3"));
  EXPECT_EQ(sub->dropped(), 1u);
  ContainerEvent e;
  ASSERT_EQ(sub->Next(&e, absl::ZeroDuration()), NextResult::kEvent);
  EXPECT_EQ(e.container_id, "c2");
}

TEST(EventBusTest, CloseEndsWaitingAndLaterSubscriptionsAfterTheQueueDrains) {
  EventBus bus;
  auto sub = bus.Subscribe();
  bus.Publish(Event(ContainerEventType::kDeleted, "c1"));
  std::thread closer([&] { bus.Close(); });
  closer.join();
  ContainerEvent e;
  EXPECT_EQ(sub->Next(&e, absl::Seconds(30)), NextResult::kEvent);
  EXPECT_EQ(sub->Next(&e, absl::Seconds(30)), NextResult::kClosed);
  auto late = bus.Subscribe();
  EXPECT_EQ(late->Next(&e, absl::Seconds(30)), NextResult::kClosed);
}

}  // namespace
}  // namespace berth::events
