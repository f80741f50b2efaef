import Glibc
import TarsNodeCore

// tarsnode: the PID 1 of every Tars business pod. Everything lives in TarsNodeCore; see
// NodeRuntime.main for the order things happen in (signals are blocked first).
exit(NodeRuntime.main())
