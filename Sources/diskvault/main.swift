#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import DiskVault

// Exit status is a contract: 0 success, 1 a failure the message explains, 2 bad usage.
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
    Terminal.error(DiskVaultCommand.fullMessage(for: error))
    if DiskVaultCommand.fullMessage(for: error).contains("Usage:") == false {
        Terminal.error("See 'diskvault --help'.")
    }
    exit(code == .failure ? 1 : 2)
}
