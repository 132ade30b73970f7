// EventBus: container lifecycle events (created, started, stopped, deleted),
// published by the container manager and streamed to clients by
// GetContainerEvents.
//
//   std::unique_ptr<EventBus::Subscription> sub = bus.Subscribe();
//   bus.Publish({.type = ContainerEventType::kStarted, .container_id = id, ...});
//   ContainerEvent event;
//   while (sub->Next(&event, absl::Seconds(1)) != NextResult::kClosed) { ... }
//
// Each subscriber has its own bounded queue: a slow one loses its oldest
// events (and learns how many through dropped()) rather than slowing the
// publishers down. The kubelet treats a gap as a reason to relist.
#ifndef BERTH_RUNTIME_EVENTS_EVENT_BUS_H_
#define BERTH_RUNTIME_EVENTS_EVENT_BUS_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace berth::events {

// runtime.v1.ContainerEventType, in its order.
enum class ContainerEventType { kCreated = 0, kStarted = 1, kStopped = 2, kDeleted = 3 };

struct ContainerEvent {
  ContainerEventType type = ContainerEventType::kCreated;
  std::string container_id;
  std::string pod_id;
  int64_t created_at_ns = 0;
};

enum class NextResult { kEvent, kTimeout, kClosed };

class EventBus {
 public:
  class Subscription {
   public:
    ~Subscription();
    // Waits up to `timeout` for the next event.
    NextResult Next(ContainerEvent* event, absl::Duration timeout);
    // Events this subscriber lost because its queue was full.
    uint64_t dropped() const;

   private:
    friend class EventBus;
    Subscription(EventBus& bus, size_t capacity) : bus_(bus), capacity_(capacity) {}

    EventBus& bus_;
    const size_t capacity_;
    mutable absl::Mutex mu_;
    std::deque<ContainerEvent> queue_ ABSL_GUARDED_BY(mu_);
    uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
    bool closed_ ABSL_GUARDED_BY(mu_) = false;
  };

  EventBus() = default;
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;
  // Subscriptions must be gone first.
  ~EventBus() = default;

  std::unique_ptr<Subscription> Subscribe(size_t capacity = 4096);
  void Publish(const ContainerEvent& event);
  // Ends every subscription (Next returns kClosed once its queue is empty), and
  // those made later: the daemon is shutting down.
  void Close();

 private:
  void Unsubscribe(Subscription* subscription);

  absl::Mutex mu_;
  std::set<Subscription*> subscribers_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace berth::events

#endif  // BERTH_RUNTIME_EVENTS_EVENT_BUS_H_
