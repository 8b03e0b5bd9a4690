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
    JSONOutput.fail(code: error.code.rawValue, message: error.description, path: error.path, exitStatus: error.exitStatus)
    exit(error.exitStatus)
} catch let error as CommandFailed {
    JSONOutput.fail(code: "failed", message: "the command failed", path: nil, exitStatus: error.status)
    exit(error.status)
} catch {
    let code = DiskVaultCommand.exitCode(for: error)
    if code == .success {
        print(DiskVaultCommand.fullMessage(for: error))
        exit(0)
    }
    // Argument errors: the parser's own message and usage, exit 2.
    Terminal.raw(DiskVaultCommand.fullMessage(for: error))
    let status: Int32 = code == .failure ? 1 : 2
    JSONOutput.fail(code: status == 2 ? "usage" : "failed", message: DiskVaultCommand.message(for: error), path: nil, exitStatus: status)
    exit(status)
}
