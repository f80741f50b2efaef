import TarsImage
import TarsTestSupport

extension TestRegistry {
  var credentials: RegistryCredentials { RegistryCredentials(username: username, password: password) }

  /// A client's options for this registry: HTTP, or HTTPS trusting its CA; its user.
  func options() -> RegistryClient.Options {
    var o = RegistryClient.Options()
    o.plainHTTP = !tls
    if tls { o.caFile = caFile }
    o.credentials = credentials
    return o
  }
}
