import ArgumentParser
import DiskVault

struct DiskVaultCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diskvault",
        abstract: "Back up virtual-machine disks (raw or qcow2 images, block devices, running VMs through qemu) into a deduplicating vault; restore whole disks.",
        discussion: """
            Exit status: 0 success, 1 a failure the message explains, 2 bad usage. With --json every command prints \
            exactly one JSON object on standard output: its result, or {"error": {"code", "message", "path", \
            "exitStatus"}}.

            Environment: DISKVAULT_VAULT (--vault), DISKVAULT_PASSPHRASE_FILE or DISKVAULT_PASSPHRASE (the vault's \
            passphrase), DISKVAULT_KEYVAULT, DISKVAULT_PRINCIPAL, DISKVAULT_CREDENTIAL (--keyvault, --principal, \
            --credential), DISKVAULT_KEYVAULT_PASSPHRASE (the key vault administrator's), DISKVAULT_HOST (the host \
            named in locks and jobs), DISKVAULT_NOW (the time, for tests).

            Examples:
              diskvault vault init /backup/v
              diskvault backup /var/lib/libvirt/images/web.img --vault /backup/v --disk web
              diskvault status --vault /backup/v
              diskvault restore --vault /backup/v --disk web --target /var/lib/libvirt/images/web-restored.img
            Shell completion: diskvault --generate-completion-script bash|zsh|fish
            """,
        version: "0.1.0",
        subcommands: [VaultCommand.self, InspectCommand.self, BackupCommand.self, PointsCommand.self, RestoreCommand.self,
                      VerifyCommand.self, StatsCommand.self, StatusCommand.self, PruneCommand.self, GCCommand.self, JobsCommand.self, PolicyCommand.self,
                      ProtectCommand.self, VMCommand.self, RunDueCommand.self, ScheduleCommand.self, KeyVaultCommand.self, KeysCommand.self,
                      RepairCommand.self, CopyCommand.self, ServeCommand.self]
    )
}

/// Thrown by a command that has already printed its outcome and must exit non-zero (e.g. verify found damage).
struct CommandFailed: Error {
    var status: Int32
}

/// Options every command that touches a vault takes.
struct VaultOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The vault: a directory, or s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).", valueName: "vault"))
    var vault: String?

    @Option(name: .customLong("passphrase-file"), help: ArgumentHelp("File holding an encrypted vault's passphrase (else DISKVAULT_PASSPHRASE_FILE, DISKVAULT_PASSPHRASE, or a prompt on a terminal).", valueName: "file"))
    var passphraseFileOption: String?

    /// --passphrase-file, else DISKVAULT_PASSPHRASE_FILE.
    var passphraseFile: String? {
        if let passphraseFileOption { return passphraseFileOption }
        if let env = Environment.value("DISKVAULT_PASSPHRASE_FILE"), !env.isEmpty { return env }
        return nil
    }

    init() {}

    init(vault: String, passphraseFile: String?) {
        self.vault = vault
        self.passphraseFileOption = passphraseFile
    }

    func open() throws -> Vault {
        let file = passphraseFile
        return try Vault.open(try location()) { () throws(DiskVaultError) -> [UInt8] in
            do {
                return try Passphrase.read(file: file, environment: "DISKVAULT_PASSPHRASE", prompt: "vault passphrase")
            } catch let e as DiskVaultError {
                throw e.code == .usage && file == nil ? Vault.noPassphrase : e
            } catch {
                throw DiskVaultError(.usage, "\(error)")
            }
        }
    }

    func location() throws -> String {
        if let vault, !vault.isEmpty { return vault }
        if let env = Environment.value("DISKVAULT_VAULT"), !env.isEmpty { return env }
        throw DiskVaultError(.usage, "no vault given: pass --vault VAULT or set DISKVAULT_VAULT")
    }
}

/// How a backup or restore reaches a key vault: as a principal with its credential file. Each may come from
/// the environment (DISKVAULT_KEYVAULT, DISKVAULT_PRINCIPAL, DISKVAULT_CREDENTIAL), which is used only when
/// a principal is given (by flag or variable), so that a host's key-vault variables never stop the backup
/// of a disk that needs no keys.
struct KeyVaultAccessOptions: ParsableArguments {
    @Option(name: .customLong("keyvault"), help: ArgumentHelp("The key vault holding the disk's keys (else DISKVAULT_KEYVAULT).", valueName: "keyvault"))
    var keyVault: String?

    @Option(name: .long, help: ArgumentHelp("The principal to act as in the key vault (else DISKVAULT_PRINCIPAL).", valueName: "name"))
    var principal: String?

    @Option(name: .long, help: ArgumentHelp("The principal's credential file, from keyvault access grant (else DISKVAULT_CREDENTIAL).", valueName: "file"))
    var credential: String?

    func access() throws -> KeyVaultAccess? {
        func env(_ name: String) -> String? { Environment.value(name).flatMap { $0.isEmpty ? nil : $0 } }
        let p = principal ?? env("DISKVAULT_PRINCIPAL")
        if keyVault == nil, credential == nil, p == nil { return nil }
        switch (keyVault ?? env("DISKVAULT_KEYVAULT"), p, credential ?? env("DISKVAULT_CREDENTIAL")) {
        case (let kv?, let p?, let c?): return KeyVaultAccess(keyVault: kv, principal: p, credential: c)
        default: throw DiskVaultError(.usage, "--keyvault, --principal and --credential go together (or DISKVAULT_KEYVAULT, DISKVAULT_PRINCIPAL, DISKVAULT_CREDENTIAL)")
        }
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false
}

struct ThreadOptions: ParsableArguments {
    @Option(name: .long, help: "Worker threads (default: one per core, and one more to cover disk waits).")
    var threads: Int?

    func count() throws -> Int {
        guard let threads else { return defaultThreadCount() }
        guard (1...256).contains(threads) else { throw DiskVaultError(.usage, "--threads must be from 1 to 256") }
        return threads
    }
}

