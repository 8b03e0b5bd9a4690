#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import DiskVault

struct VaultCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vault",
        abstract: "Create and describe vaults.",
        subcommands: [VaultInit.self, VaultInfo.self, VaultPasswd.self, VaultKeyCommand.self, VaultEscrowCommand.self]
    )
}

struct VaultInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new vault, encrypted unless asked otherwise, in a new or empty directory.",
        discussion: """
            The vault is encrypted (AES-256-GCM) by default: its master key is sealed under a key derived (scrypt) \
            from the passphrase, read from --passphrase-file, DISKVAULT_PASSPHRASE or a prompt (asked twice). \
            --encryption none makes a clear vault: whoever can read its folder reads every disk's data.

            Examples:
              diskvault vault init /backup/vault --passphrase-file vault.pass
              diskvault vault init /backup/clear --encryption none
            """
    )

    @Argument(help: "Directory for the new vault.")
    var vault: String

    @Option(name: .long, help: "Chunk size: a power of two from 64KiB to 16MiB.")
    var chunkSize: String = "4MiB"

    @Flag(name: .long, help: "Encrypt the vault (AES-256-GCM), as it is by default.")
    var encrypt = false

    @Option(name: .long, help: "aes-256-gcm (the default) or none (a clear vault).")
    var encryption: String?

    @Option(name: .long, help: ArgumentHelp("File holding the new vault's passphrase.", valueName: "file"))
    var passphraseFile: String?

    @Option(name: .long, help: "scrypt cost as log2(N), 10–20 (default 15: about 32 MiB and a tenth of a second).")
    var kdfWorkFactor: Int = 15

    @OptionGroup var output: OutputOptions

    func run() throws {
        guard let size = ByteCount.parse(chunkSize), size <= UInt64(Int.max) else {
            throw DiskVaultError(.usage, "cannot read chunk size \"\(chunkSize)\" (e.g. 4MiB, 1M, 65536)")
        }
        let scheme = encryption ?? VaultConfig.Encryption.aesGCM
        guard [VaultConfig.Encryption.none, VaultConfig.Encryption.aesGCM].contains(scheme), !(encrypt && scheme == VaultConfig.Encryption.none) else {
            throw DiskVaultError(.usage, "--encryption must be none or aes-256-gcm\(encrypt ? " (--encrypt means aes-256-gcm)" : "")")
        }
        var newEncryption: Vault.NewEncryption? = nil
        if scheme == VaultConfig.Encryption.aesGCM {
            // Encryption is the default: say, too, how to ask for a clear vault.
            if passphraseFile == nil, (Environment.value("DISKVAULT_PASSPHRASE") ?? "").isEmpty, isatty(0) != 1 {
                throw DiskVaultError(
                    .usage,
                    "no vault passphrase: give --passphrase-file or set DISKVAULT_PASSPHRASE (vaults are encrypted by default), "
                        + "or give --encryption none for a clear vault")
            }
            newEncryption = .init(
                passphrase: try Passphrase.read(file: passphraseFile, environment: "DISKVAULT_PASSPHRASE", prompt: "vault passphrase", confirm: true),
                logN: kdfWorkFactor)
        }
        let created = try Vault.create(vault, chunkSize: Int(size), encryption: newEncryption)
        if encryption == VaultConfig.Encryption.none {
            Terminal.warning("vault \(vault) is not encrypted: whoever can read its folder reads every disk's data (chunks, compressed or raw), its layout and its manifests; only the keys of encrypted disks stay sealed under their key vault")
        }
        if output.json {
            printJSON(created.config)
        } else {
            print("created \(created.isEncrypted ? "encrypted " : "")vault \(vault) (chunk size \(ByteCount.format(UInt64(created.config.chunkSize))), id \(created.config.id))")
        }
    }
}

struct VaultPasswd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passwd",
        abstract: "Change an encrypted vault's passphrase (the master key is sealed again; nothing else changes).",
        discussion: """
            The current passphrase comes from --passphrase-file, DISKVAULT_PASSPHRASE or a prompt; the new one from \
            --new-passphrase-file, DISKVAULT_NEW_PASSPHRASE or a prompt (asked twice). vault.json is replaced in one \
            atomic step: interrupted, the vault opens with the old passphrase or the new one.

            Example:
              diskvault vault passwd --vault /backup/vault --passphrase-file old.pass --new-passphrase-file new.pass
            """)

    @OptionGroup var vaultOptions: VaultOptions
    @Option(name: .long, help: ArgumentHelp("File holding the new passphrase.", valueName: "file")) var newPassphraseFile: String?
    @Option(name: .long, help: "scrypt cost as log2(N), 10–20 (default: as before).") var kdfWorkFactor: Int?
    @OptionGroup var output: OutputOptions

    func run() throws {
        let vault = try vaultOptions.open()
        guard vault.isEncrypted else { throw DiskVaultError(.usage, "vault \(vault.location) is not encrypted: it has no passphrase to change") }
        let new = try Passphrase.read(file: newPassphraseFile, environment: "DISKVAULT_NEW_PASSPHRASE", prompt: "new vault passphrase", confirm: true)
        try vault.changePassphrase(new, logN: kdfWorkFactor)
        output.done("changed the passphrase of vault \(vault.location)", ["vault": vault.location])
    }
}

struct VaultKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Export or import an encrypted vault's key (its master key, still sealed under the passphrase).",
        discussion: """
            Keep the export apart from the vault: with it, a vault whose vault.json is lost or damaged opens again \
            (with the passphrase). --paper writes numbered lines with a checksum each, to print and type back.

            Examples:
              diskvault vault key export --vault /backup/vault --out vault.key --paper
              diskvault vault key import --vault /backup/vault --file vault.key --passphrase-file pw
            """,
        subcommands: [Export.self, Import.self])

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Write the vault's key to a new file (mode 0600).",
            discussion: """
            Examples:
              diskvault vault key export --vault /backup/v --out vault.key
              diskvault vault key export --vault /backup/v --out vault-paper.txt --paper
            """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "Where to write it (must not exist).") var out: String
        @Flag(name: .long, help: "Numbered lines with a checksum each, to print and type back.") var paper = false
        @OptionGroup var output: OutputOptions
        func run() throws {
            let key = try Vault.exportKey(try vaultOptions.location())
            try writePrivateFile(out, paper ? Array(try key.paper().utf8) : try JSON.encode(key))
            output.done("exported the key of vault \(try vaultOptions.location()) (id \(key.id)) to \(out)", ["vaultID": key.id, "file": out])
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Put an exported key back into the vault's vault.json (the passphrase must open it).",
            discussion: """
            Examples:
              diskvault vault key import --vault /backup/v --file vault.key --passphrase-file v.pass
            """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "The exported key (JSON or paper form).") var file: String
        @OptionGroup var output: OutputOptions
        func run() throws {
            let key = try VaultKeyExport.parse(try FileSystem.readFile(file, limit: 1 << 16), source: file)
            let passphrase = try Passphrase.read(file: vaultOptions.passphraseFile, environment: "DISKVAULT_PASSPHRASE", prompt: "vault passphrase")
            try Vault.importKey(key, into: try vaultOptions.location(), passphrase: passphrase)
            output.done("imported the key of vault \(key.id) into \(try vaultOptions.location())", ["vaultID": key.id, "vault": try vaultOptions.location()])
        }
    }
}

struct VaultEscrowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "escrow", abstract: "The vault's escrow key, which keeps disk keys restorable after their key vault is lost.",
        discussion: """
            `init` makes an X25519 key pair for the vault (escrow.json, sealed in the vault): its public half is what \
            `diskvault keyvault escrow add` seals a key vault's items to; its private half is sealed under a \
            recovery passphrase of its own, never under the vault's, so that the hosts that back up into the vault \
            (which hold its passphrase) cannot read the keys of the disks they back up. Keep the recovery \
            passphrase offline: `diskvault keys restore --keyvault NEW` asks for it when a key vault is lost.

            Example:
              diskvault vault escrow init --vault /backup/vault --passphrase-file vault.pass --recovery-passphrase-file recovery.pass
            """,
        subcommands: [Init.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Make the vault's escrow key (once; it is never replaced).",
            discussion: """
            Examples:
              diskvault vault escrow init --vault /backup/v --passphrase-file v.pass --recovery-passphrase-file recovery.pass
            """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: ArgumentHelp("File holding the new recovery passphrase (else DISKVAULT_RECOVERY_PASSPHRASE or a prompt, asked twice).", valueName: "file"))
        var recoveryPassphraseFile: String?
        @Option(name: .long, help: "scrypt cost as log2(N), 10–20 (default 17: about 128 MiB, once per recovery).") var kdfWorkFactor: Int = 17
        @OptionGroup var output: OutputOptions

        func run() throws {
            let vault = try vaultOptions.open()
            guard vault.isEncrypted else {
                throw DiskVaultError(.usage, "vault \(vault.location) is not encrypted: a clear vault keeps no escrow of keys")
            }
            let recovery = try Passphrase.read(file: recoveryPassphraseFile, environment: "DISKVAULT_RECOVERY_PASSPHRASE", prompt: "new recovery passphrase", confirm: true)
            let vaultPassphrase = try? Passphrase.read(file: vaultOptions.passphraseFile, environment: "DISKVAULT_PASSPHRASE", prompt: "vault passphrase")
            if let vaultPassphrase, vaultPassphrase == recovery {
                throw DiskVaultError(.usage, "the recovery passphrase must not be the vault's passphrase (every backup host holds that one)")
            }
            let key = try vault.createEscrowKey(recoveryPassphrase: recovery, logN: kdfWorkFactor)
            if output.json { printJSON(["vaultID": vault.config.id, "publicKey": key.publicKey]); return }
            print("made the escrow key of vault \(vault.location) (public key \(key.publicKey)); keep its recovery passphrase offline")
        }
    }
}
