import ArgumentParser
import DiskVault

struct DiskVaultCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diskvault",
        abstract: "Back up raw virtual-machine disk images into a deduplicating vault; restore whole disks.",
        discussion: """
            Exit status: 0 success, 1 a failure the message explains, 2 bad usage.
            --vault may come from DISKVAULT_VAULT.
            """,
        version: "0.1.0",
        subcommands: [VaultCommand.self, InspectCommand.self, BackupCommand.self, PointsCommand.self, RestoreCommand.self,
                      VerifyCommand.self, KeyVaultCommand.self]
    )
}

/// Thrown by a command that has already printed its outcome and must exit non-zero (e.g. verify found damage).
struct CommandFailed: Error {
    var status: Int32
}

/// Options every command that touches a vault takes.
struct VaultOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The vault (a directory).", valueName: "vault"))
    var vault: String?

    func open() throws -> Vault {
        try Vault.open(try location())
    }

    func location() throws -> String {
        if let vault, !vault.isEmpty { return vault }
        if let env = Environment.value("DISKVAULT_VAULT"), !env.isEmpty { return env }
        throw DiskVaultError(.usage, "no vault given: pass --vault VAULT or set DISKVAULT_VAULT")
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false
}

struct ThreadOptions: ParsableArguments {
    @Option(name: .long, help: "Worker threads (default: one per core).")
    var threads: Int?

    func count() throws -> Int {
        guard let threads else { return defaultThreadCount() }
        guard (1...256).contains(threads) else { throw DiskVaultError(.usage, "--threads must be from 1 to 256") }
        return threads
    }
}

