#include "runtime/events/event_bus.h"

namespace berth::events {

EventBus::Subscription::~Subscription() { bus_.Unsubscribe(this); }

NextResult EventBus::Subscription::Next(ContainerEvent* event, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || closed_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (!queue_.empty()) {
    *event = std::move(queue_.front());
    queue_.pop_front();
    return NextResult::kEvent;
  }
  return closed_ ? NextResult::kClosed : NextResult::kTimeout;
}

uint64_t EventBus::Subscription::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

std::unique_ptr<EventBus::Subscription> EventBus::Subscribe(size_t capacity) {
  std::unique_ptr<Subscription> subscription(new Subscription(*this, capacity == 0 ? 1 : capacity));
  absl::MutexLock lock(&mu_);
  if (closed_) {
    absl::MutexLock sub_lock(&subscription->mu_);
    subscription->closed_ = true;
  } else {
    subscribers_.insert(subscription.get());
  }
  return subscription;
}

void EventBus::Publish(const ContainerEvent& event) {
  absl::MutexLock lock(&mu_);
  for (Subscription* s : subscribers_) {
    absl::MutexLock sub_lock(&s->mu_);
    if (s->queue_.size() >= s->capacity_) {
      s->queue_.pop_front();
      ++s->dropped_;
    }
    s->queue_.push_back(event);
  }
}

void EventBus::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (Subscription* s : subscribers_) {
    absl::MutexLock sub_lock(&s->mu_);
    s->closed_ = true;
  }
}

void EventBus::Unsubscribe(Subscription* subscription) {
  absl::MutexLock lock(&mu_);
  subscribers_.erase(subscription);
}

}  // namespace berth::events
