import CTarsSys
import Glibc
import Synchronization

/// A failed system call, with what we were doing and the errno text.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
  public var operation: String
  public var errno: Int32
  public var detail: String

  public init(_ operation: String, errno: Int32 = ctars_errno()) {
    self.operation = operation
    self.errno = errno
    detail = String(cString: strerror(errno))
  }

  /// A failure that is not an errno (a name that does not resolve, say).
  public init(_ operation: String, detail: String) {
    self.operation = operation
    errno = 0
    self.detail = detail
  }

  public var description: String { "\(operation): \(detail)" }
}

/// A single-threaded epoll loop with timers: the whole of tarsnode's (and tarsctl's) I/O runs on
/// one of these, so an idle process sleeps in `epoll_wait` until a socket, a signal descriptor
/// or the next deadline needs it — no polling, no threads.
///
/// Everything except `execute` must be called on the loop's thread.
public final class TarsEventLoop: @unchecked Sendable {
  public struct Events: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let readable = Events(rawValue: UInt32(CTARS_EPOLLIN))
    public static let writable = Events(rawValue: UInt32(CTARS_EPOLLOUT))
    public static let error = Events(rawValue: UInt32(CTARS_EPOLLERR))
    public static let hangup = Events(rawValue: UInt32(CTARS_EPOLLHUP) | UInt32(CTARS_EPOLLRDHUP))
  }

  public struct TimerID: Hashable, Sendable {
    let value: UInt64
  }

  struct Timer {
    var deadline: UInt64
    var id: UInt64
  }

  let epfd: Int32
  let wakeFD: Int32
  var handlers: [Int32: (Events) -> Void] = [:]
  var timers: [Timer] = []  // binary min-heap on (deadline, id)
  /// Callbacks of the timers not yet run or cancelled; cancelling releases what they captured.
  var timerCallbacks: [UInt64: () -> Void] = [:]
  var nextTimerID: UInt64 = 1
  var stopped = false
  let pending = Mutex<[@Sendable () -> Void]>([])
  /// The thread running the loop (pthread_t is an integer on Linux); 0 before it first runs.
  let owner = Atomic<UInt>(0)
  /// Scratch space for socket reads; one per loop since a loop reads one socket at a time.
  /// Allocated, never zero-filled: a page of it becomes resident only once a read reaches it,
  /// so an idle loop whose reads are a few hundred bytes keeps one page, not sixteen.
  let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

  public init() throws(SystemError) {
    epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
    guard epfd >= 0 else { throw SystemError("epoll_create1") }
    wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
    guard wakeFD >= 0 else {
      close(epfd)
      throw SystemError("eventfd")
    }
    try register(fd: wakeFD, events: .readable) { [unowned self] _ in self.drainWakeups() }
  }

  deinit {
    close(wakeFD)
    close(epfd)
    readBuffer.deallocate()
  }

  /// Monotonic nanoseconds.
  public static func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
  }

  /// Whether the caller is on the thread running this loop (or the loop is not running yet).
  public var inEventLoop: Bool {
    let thread = owner.load(ordering: .acquiring)
    return thread == 0 || thread == UInt(pthread_self())
  }

  // MARK: Descriptors

  /// Calls `handler` whenever `fd` has one of `events` (errors and hang-ups are always reported).
  public func register(fd: Int32, events: Events, handler: @escaping (Events) -> Void) throws(SystemError) {
    guard ctars_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, events.rawValue) == 0 else { throw SystemError("epoll_ctl(ADD)") }
    handlers[fd] = handler
  }

  public func modify(fd: Int32, events: Events) {
    _ = ctars_epoll_ctl(epfd, EPOLL_CTL_MOD, fd, events.rawValue)
  }

  /// Stops watching `fd`; the caller still owns (and closes) it.
  public func unregister(fd: Int32) {
    _ = ctars_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, 0)
    handlers[fd] = nil
  }

  // MARK: Timers

  /// Runs `callback` once, `milliseconds` from now.
  @discardableResult
  public func schedule(afterMilliseconds milliseconds: Int, _ callback: @escaping () -> Void) -> TimerID {
    // Clamped to about 24 days: far enough for any timeout, and no overflow.
    schedule(at: Self.now() + UInt64(min(max(0, milliseconds), Int(Int32.max))) * 1_000_000, callback)
  }

  /// Runs `callback` once at the monotonic time `deadline` (nanoseconds).
  @discardableResult
  public func schedule(at deadline: UInt64, _ callback: @escaping () -> Void) -> TimerID {
    let id = nextTimerID
    nextTimerID += 1
    timerCallbacks[id] = callback
    timers.append(Timer(deadline: deadline, id: id))
    siftUp(timers.count - 1)
    return TimerID(value: id)
  }

  public func cancel(_ timer: TimerID) { timerCallbacks[timer.value] = nil }

  func less(_ a: Int, _ b: Int) -> Bool {
    timers[a].deadline < timers[b].deadline || (timers[a].deadline == timers[b].deadline && timers[a].id < timers[b].id)
  }

  func siftUp(_ index: Int) {
    var i = index
    while i > 0 {
      let parent = (i - 1) / 2
      guard less(i, parent) else { return }
      timers.swapAt(i, parent)
      i = parent
    }
  }

  func popTimer() -> Timer {
    let top = timers[0]
    let last = timers.removeLast()
    if !timers.isEmpty {
      timers[0] = last
      var i = 0
      while true {
        let l = 2 * i + 1
        let r = l + 1
        var m = i
        if l < timers.count && less(l, m) { m = l }
        if r < timers.count && less(r, m) { m = r }
        if m == i { break }
        timers.swapAt(i, m)
        i = m
      }
    }
    return top
  }

  /// Drops cancelled timers from the top so the next deadline is a live one.
  func nextDeadline() -> UInt64? {
    while let top = timers.first, timerCallbacks[top.id] == nil { _ = popTimer() }
    return timers.first?.deadline
  }

  func runDueTimers() {
    let now = Self.now()
    while let deadline = nextDeadline(), deadline <= now {
      let t = popTimer()
      timerCallbacks.removeValue(forKey: t.id)?()
    }
  }

  // MARK: Cross-thread work

  /// Runs `work` on the loop's thread soon. Safe from any thread.
  public func execute(_ work: @escaping @Sendable () -> Void) {
    pending.withLock { $0.append(work) }
    var one: UInt64 = 1
    _ = write(wakeFD, &one, 8)
  }

  func drainWakeups() {
    var value: UInt64 = 0
    _ = read(wakeFD, &value, 8)
    let work = pending.withLock { list in
      defer { list.removeAll() }
      return list
    }
    for w in work { w() }
  }

  // MARK: Running

  /// Waits for at most `timeoutMs` (−1: until something happens, capped by the next timer)
  /// and handles what is ready.
  public func runOnce(timeoutMs: Int = -1) {
    owner.store(UInt(pthread_self()), ordering: .releasing)
    var wait = timeoutMs
    if let deadline = nextDeadline() {
      let now = Self.now()
      let untilTimer = deadline <= now ? 0 : Int((deadline - now + 999_999) / 1_000_000)
      wait = wait < 0 ? untilTimer : min(wait, untilTimer)
    }
    var fds = [Int32](repeating: 0, count: 64)
    var events = [UInt32](repeating: 0, count: 64)
    let n = ctars_epoll_wait(epfd, &fds, &events, 64, Int32(clamping: wait))
    if n > 0 {
      for i in 0..<Int(n) {
        handlers[fds[i]]?(Events(rawValue: events[i]))
      }
    }
    runDueTimers()
  }

  /// Runs until `stop()`.
  public func run() {
    stopped = false
    while !stopped { runOnce() }
  }

  /// Runs until `done()` is true or `timeoutMs` passes; returns whether `done()` became true.
  @discardableResult
  public func run(until done: () -> Bool, timeoutMs: Int? = nil) -> Bool {
    let deadline = timeoutMs.map { Self.now() + UInt64(min(max(0, $0), Int(Int32.max))) * 1_000_000 }
    while !done() {
      var wait = -1
      if let deadline {
        let now = Self.now()
        if now >= deadline { return false }
        wait = Int((deadline - now + 999_999) / 1_000_000)
      }
      runOnce(timeoutMs: wait)
    }
    return true
  }

  /// Makes `run()` return after the current iteration. Safe from any thread.
  public func stop() {
    execute { [unowned self] in self.stopped = true }
  }
}
