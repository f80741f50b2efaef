import Glibc
import TarsAgentCore

// tarsagent: the node agent (a DaemonSet on nodes labelled tars.io/node, or a systemd service).
// Everything lives in TarsAgentCore; see AgentMain for the commands.
exit(AgentMain.main(Array(CommandLine.arguments.dropFirst())))
