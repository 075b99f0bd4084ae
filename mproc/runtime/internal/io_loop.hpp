// The node's I/O thread: one epoll set over every link, child pidfd and timer of a node.
//
// Handlers run on the loop thread. Registrations are addressed by token, not pointer, so an
// event still queued in the current epoll batch for a handler removed moments before is
// dropped instead of calling freed memory.
//
// Two threads take turns as the loop thread (leader/follower). What a batch of events made
// runnable (actors a frame was for) the leader runs itself, with the loop released, instead
// of waking another thread for it: a thread wake-up is most of a local round trip. While it
// does, the other thread stands by; if the work lasts longer than the takeover period (an
// actor that computes), the standby takes the loop over, so no frame, timer or heartbeat
// waits behind user code for long. The standby learns it from a periodic timer that runs
// while the loop is busy (a tick finding the same turn running as the tick before), not
// from a timer set per turn: arming and disarming one cost 2 µs per turn here. Work that is
// about to wait (a request, a lock, a queue) says so (will_block()) and the standby takes
// over at once. With nobody standing by, the work goes to the actor system's own threads as
// before.
//
// In a process confined to one CPU, a thread waiting for a reply leads the loop itself
// (lead_for): a reply read by a loop thread and handed to its caller costs a third thread
// switch per round trip, and on one CPU switches are the round trip (pinned pingpong
// 17.5 -> 12.5 µs, docs/architecture.md "Callers that lead"). The leader that hands a reply
// to such a caller leaves the loop to callers after that batch; the caller, once answered,
// keeps it left to callers while its own code runs, as a turn: its next request leads again
// at once, and the standby takes the loop back at a tick if it does not come. Anything that
// needs the loop meanwhile (a post, a write waiting for the loop, a call that will block)
// has the standby take it back at once. A caller handles only links' reading events: at
// anything else (a task, a timer, a child's end, a link closing) it hands the loop back and
// waits as other callers do, so that no user callback runs on a thread that may hold the
// user's locks.
//
// With more than one CPU a caller leads the loop the same way while its replies come fast,
// but polls it (epoll_wait returns at once) for as long as it would spin, and hands it back
// if its reply has not come by then: a loop thread woken by the reply wakes on the CPU of
// the process that sent it, behind that process's own work (unpinned pingpong 35-36 ->
// 24-25 µs). A caller that sleeps asks the loop's threads to take a loop left to callers
// back (wanting_threads): its reply must not wait for the tick.
//
// A reader of shared memory (a child's ring) that read everything stays awake until the
// loop would wait, and the loop looks at it first (look_again): what came meanwhile is the
// next batch, and its writer made no system call for it (idle_readers says how it waits).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "mproc/runtime/spin.hpp"

namespace mproc::detail {

class io_loop {
public:
  using clock = std::chrono::steady_clock;
  using event_handler = std::function<void(std::uint32_t epoll_events)>;
  using task = std::function<void()>;

  // What a loop thread collects while it handles events, done between batches.
  class batch_work {
  public:
    virtual ~batch_work() = default;
    virtual bool pending() const = 0;
    // With the loop released: may take long.
    virtual void run() = 0;
    // Gives the work to other threads: nobody stands by to take the loop over.
    virtual void hand_over() = 0;
    // From the thread that took the loop over while run() lasts: what run() has not started
    // goes to other threads, and so does what comes up until run() returns.
    virtual void abandon() = 0;
    // Its thread ends: whatever comes up later goes to other threads. The loop keeps the
    // object until it is destroyed itself (CAF remembers where an actor last ran).
    virtual void retire() = 0;
  };
  using work_factory = std::function<std::unique_ptr<batch_work>()>;

  // A turn is taken over after between one and two of these. Each tick wakes the standby,
  // which costs 50-80 µs of CPU on a VM where a wake-up is a world switch: at 1 ms, 5
  // producer and 5 consumer processes, whose queue agents have short turns all the time,
  // were 10-15% slower than at 4-5 ms (docs/architecture.md, "Two loop threads").
  static constexpr auto default_takeover_period = std::chrono::milliseconds{4};

  // How a reader that read everything (look_again()) waits for more. With one CPU to run on it
  // yields the CPU before it sleeps: the writer needs that CPU, and gets it at once (pinned
  // pingpong 18.7-19.4 -> 13.3-14.1 µs). With more it sleeps at once: a spin, yielding or
  // pausing, held up the threads that bring its bytes (unpinned pingpong 18 -> 33 µs) or
  // gave the CPU to a neighbour's computation for a whole slice (Pool.map 12% slower).
  enum class idle_readers { sleep, yield };
  static idle_readers default_idle_readers() noexcept;

  explicit io_loop(std::chrono::milliseconds takeover_period = default_takeover_period,
                   idle_readers idle = default_idle_readers());
  ~io_loop();
  io_loop(const io_loop&) = delete;
  io_loop& operator=(const io_loop&) = delete;

  // `make_work`, if set, runs once on each loop thread; without it one thread serves.
  void start(work_factory make_work = {});
  // Runs the tasks already posted, then ends the thread. Not from the loop thread.
  void stop();

  // What a registration reads that comes without a system call (a link's ring): the loop can
  // look at it itself before it sleeps, and a writer that sees its reader awake wakes nobody.
  class poller {
  public:
    // Bytes wait.
    virtual bool ready() const = 0;
    // Says the reader sleeps (its writer wakes its descriptor from now on), unless bytes came
    // meanwhile (false).
    virtual bool sleep() = 0;

  protected:
    ~poller() = default;
  };

  // Loop thread only. `callers_may_run`: a caller leading the loop (lead_for) may handle its
  // reading events (a link's frames); everything else it leaves to the loop's own threads.
  // `polled`, if given, lives as long as the registration.
  std::uint64_t add(int fd, std::uint32_t events, event_handler handler,
                    bool callers_may_run = false, poller* polled = nullptr);
  void remove(std::uint64_t token, int fd);
  // Loop thread, for the reader of `token` (added with a poller), which read (everything, or
  // its share of a turn) and did not say it sleeps. Before the loop waits, it looks at the
  // poller again: found bytes are the next batch, without a system call. Else the reader waits as idle_readers says,
  // yielding (while spin.hpp's gauge finds that its bytes came fast lately) and then
  // sleeping: a reader that sleeps costs its writer a system call and itself a wake-up,
  // most of a local round trip (docs/architecture.md, "Readers that yield").
  void look_again(std::uint64_t token);
  std::uint64_t after(clock::duration delay, task fn);
  // Cancels the timer `timer` names, if any, and sets it to 0 (no timer).
  void cancel(std::uint64_t& timer);

  // Any thread: epoll_ctl is thread-safe, so writers can ask for EPOLLOUT themselves.
  void modify(std::uint64_t token, int fd, std::uint32_t events);
  // Any thread: an event is on its way that must not wait for a caller's next lead (a
  // writer waits for the room its reader makes): a loop left to callers goes back to its
  // threads, as after modify().
  void wanted() noexcept;
  // Any thread: runs `fn` on the loop thread, in posting order.
  void post(task fn);

  bool in_loop() const { return std::this_thread::get_id() == loop_thread_id_.load(); }

  // Called by a thread about to wait (for a reply, a lock, an item): if it runs a turn of
  // work its loop released, the standby takes the loop over now instead of at a tick, so
  // what the thread waits for is not held up behind it. Anywhere else it does nothing.
  static void will_block() noexcept;

  // A thread about to wait for something this loop brings (a reply): if the loop is left to
  // callers, leads it until `done()`, `deadline` or the loop's end and leaves it to callers
  // again (true); or, at something only the loop's own threads run (caller_may_step), hands
  // it back to them at once (also true: `done()` says whether to wait on). Else false and
  // nothing happened. Not from a loop thread. `poll`: its waits for events return at once
  // (a busy wait, bounded by `deadline`); it hands the loop back unless `done()` then.
  bool lead_for(const std::function<bool()>& done, clock::time_point deadline,
                bool poll = false);
  // While one lives, this thread is about to lead the loop it left to callers (a caller
  // sending its next request): what it asks of the loop meanwhile (a write left to the loop)
  // waits for its lead instead of taking the loop back. will_block() still hands it back.
  // It ends what left_for_this_thread() began.
  class lead_next {
  public:
    explicit lead_next(bool soon) noexcept;
    ~lead_next();
    lead_next(const lead_next&) = delete;
    lead_next& operator=(const lead_next&) = delete;

  private:
    bool previous_;
  };
  // While one lives, a thread sleeps until the loop's own threads bring it something (a
  // reply it does not lead the loop for): a loop left to callers goes back to them now, and
  // whoever leaves it to callers meanwhile hands it back at once (a caller leading it goes
  // on until then), else the reply would wait for the standby's tick. Any thread; a null
  // loop does nothing.
  class wanting_threads {
  public:
    explicit wanting_threads(io_loop* loop) noexcept;
    ~wanting_threads();
    wanting_threads(const wanting_threads&) = delete;
    wanting_threads& operator=(const wanting_threads&) = delete;

  private:
    io_loop* loop_;
  };
  // Whether a caller could lead it now (lead_for): left to callers, and not handed back.
  bool left_to_callers() const noexcept;
  // Loop thread, a callback of the user's (a process's start or end), promised the loop's
  // own thread: runs `fn` now (after any held back before), or, on a caller leading the loop
  // (which may hold the user's locks), on a loop thread, to which that caller hands the loop
  // at once.
  void on_loop_thread(task fn);
  // Loop thread, handing something to a caller that would lead next: the loop is left to
  // callers after this batch, if a thread stands by to take it back.
  void leave_to_callers_after_batch() noexcept { leave_after_batch_ = true; }
  // That caller, once answered: until it sends its next request, will_block() from it hands
  // the loop back (a join, a lock), as from a caller that left the loop itself. Else what
  // it waits for would wait for the standby's tick.
  void left_for_this_thread() noexcept;

  // One read buffer for every link: only the loop thread reads.
  char* read_buffer() { return read_buffer_.get(); }
  static constexpr std::size_t read_buffer_size = 256 * 1024;

private:
  enum class phase { leading, released, ended };

  enum class outcome { released, left_to_callers, ended };
  void serve(bool leading);
  void run_turn(batch_work& work);
  outcome lead(batch_work* work);
  void release(batch_work* work);
  void leave_to_callers(bool again) noexcept;
  void forget_left() noexcept;
  void kick_if_left_to_callers() noexcept;
  void wake() noexcept;
  bool caller_may_step();
  bool asked_meanwhile();
  // This thread left the loop to callers and is sending its next request (lead_next).
  bool about_to_lead_here() const noexcept;
  // The loops alive in this process: a thread's note of the loop it left to callers may
  // outlive the loop (and its node).
  static std::mutex& live_loops_mtx();
  static std::unordered_set<const io_loop*>& live_loops();
  bool wait_for_takeover();
  void arm_takeover(std::chrono::nanoseconds after, std::chrono::nanoseconds period = {});
  void watch_turn();
  void hand_over_turn() noexcept;
  void stop_ticking() noexcept;
  void step();
  // Waits for epoll's events for up to `timeout_ms`; the batch is what came.
  void wait_events(int timeout_ms);
  // Looks at the awake readers, yielding the CPU in between if idle_ says so, until one has
  // bytes (true: the batch is they), the gauge's limit or `timeout_ms`; then each says it
  // sleeps, unless its bytes came meanwhile. A wait that does not block leaves them awake.
  bool wait_for_readers(int timeout_ms);
  // The awake readers with bytes become the batch (true), if any; the loop forgets them.
  bool take_ready_readers();
  // Appends a reader's bytes to the batch, as if epoll had said so (room checked before).
  void batch_reader(std::uint64_t token);
  poller* poller_of(std::uint64_t token) const;
  void dispatch(std::uint64_t token, std::uint32_t events);
  int next_timeout_ms();
  bool run_one_due_timer(clock::time_point due_by);
  void run_tasks();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  std::thread standby_;
  std::atomic<std::thread::id> loop_thread_id_{};
  std::atomic<bool> stopping_{false};

  // Leadership: the leader holds lead_mtx_; the standby waits on the takeover timer.
  work_factory make_work_;
  std::mutex lead_mtx_;
  std::atomic<phase> phase_{phase::leading};
  std::atomic<int> standing_by_{0};
  std::atomic<batch_work*> released_work_{nullptr};  // what the releasing leader runs
  std::unique_ptr<batch_work> works_[2];              // one per thread, kept past its end

  // The work of a loop left to callers: none of its own, the callers' code runs meanwhile.
  struct callers_turn final : batch_work {
    bool pending() const override { return false; }
    void run() override {}
    void hand_over() override {}
    void abandon() override {}
    void retire() override {}
  } callers_turn_;
  bool leave_after_batch_ = false;  // leader only
  // A write was asked of the loop since its last wait, or a user's callback held back: a
  // caller (or loop thread) leaving the loop to callers hands it back to a loop thread then.
  std::atomic<bool> needs_kick_{false};
  std::atomic<int> wanting_{0};  // threads in a wanting_threads scope
  clock::time_point caller_deadline_ = clock::time_point::max();  // while a caller leads
  bool caller_polls_ = false;  // while a caller leads: its waits do not block (lead_for)
  // The standbys' view at the last tick, shared: after a hand-over to callers both loop
  // threads stand by, and either one may read a given tick.
  std::atomic<std::uint64_t> released_at_last_tick_{~std::uint64_t{0}};
  std::atomic<std::uint64_t> turns_at_last_tick_{~std::uint64_t{0}};

  // The batch in progress: the leader handles one event, task or timer per step, so that no
  // callback runs while actors it may wait for sit in the leader's work. It passes on to
  // the next leader with the loop.
  static constexpr int max_events = 64;
  enum class stage { wait, events, tasks, timers };
  stage stage_ = stage::wait;
  std::uint64_t batch_tokens_[max_events];
  std::uint32_t batch_events_[max_events];
  int batch_size_ = 0;
  int batch_next_ = 0;
  std::vector<task> batch_tasks_;
  std::size_t batch_task_next_ = 0;
  clock::time_point timers_due_by_;  // the timers stage runs what was due when it began
  int takeover_fd_ = -1;  // a periodic timerfd, armed while the loop is busy
  std::atomic<bool> watching_{false};    // it is armed
  std::atomic<std::uint64_t> turns_{0};  // turns begun: the standby compares at each tick
  std::atomic<std::uint64_t> handed_turn_{0};  // a turn whose work will block: take it over
  const std::chrono::milliseconds takeover_period_;
  std::uint64_t next_token_ = 1;  // 0 is the wake-up eventfd

  std::mutex tasks_mtx_;
  std::vector<task> tasks_;
  std::vector<task> loop_only_tasks_;  // on_loop_thread's, held back from callers

  struct registration {
    // Shared, so that an event holds it while it runs (the handler may remove itself)
    // without copying the function: a copy allocated once per event (perf probe on malloc).
    std::shared_ptr<const event_handler> handler;
    bool callers_may_run;
    poller* polled;
  };
  // Registrations whose readers are awake (look_again()), and the batches they made since
  // the loop last asked epoll: every max_batches_looked it asks again without waiting, so
  // that no socket, child's end or task waits behind a ring that always has bytes.
  std::vector<std::uint64_t> awake_readers_;
  int batches_looked_ = 0;
  static constexpr int max_batches_looked = 32;
  const idle_readers idle_;
  spin_gauge arrivals_;  // how long spinning readers waited for their bytes lately
  clock::time_point slept_at_{};  // when they went to sleep, until the next events
  std::unordered_map<std::uint64_t, registration> handlers_;
  std::map<std::pair<clock::time_point, std::uint64_t>, task> timers_;
  std::unordered_map<std::uint64_t, clock::time_point> timer_due_;
  // Not zero-filled: untouched pages cost nothing, and a child process that never receives
  // much never faults them in (page faults are most of a process's start-up here).
  std::unique_ptr<char[]> read_buffer_;
};

} // namespace mproc::detail
