#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import DiskVault

// Exit status is a contract: 0 success, 1 a failure the message explains, 2 bad usage.
InterruptCleanup.install()
do {
    var command = try DiskVaultCommand.parseAsRoot()
    try command.run()
} catch let error as DiskVaultError {
    Terminal.error(error.description)
    exit(error.exitStatus)
} catch let error as CommandFailed {
    exit(error.status)
} catch {
    let code = DiskVaultCommand.exitCode(for: error)
    if code == .success {
        print(DiskVaultCommand.fullMessage(for: error))
        exit(0)
    }
    // Argument errors: the parser's own message and usage, exit 2.
    Terminal.raw(DiskVaultCommand.fullMessage(for: error))
    exit(code == .failure ? 1 : 2)
}
