#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import DiskVault
import Foundation

struct KeyVaultCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyvault",
        abstract: "Keep disk keys (BEKs) and the keys that wrap them (KEKs) in a key vault, encrypted at rest.",
        discussion: "The administrator's passphrase comes from --passphrase-file, DISKVAULT_KEYVAULT_PASSPHRASE, or a prompt.",
        subcommands: [KeyVaultInit.self, KeyVaultKey.self, KeyVaultSecret.self, KeyVaultAccessCommand.self, KeyVaultEscrow.self,
                      KeyVaultList.self, KeyVaultPasswd.self, KeyVaultUpgrade.self]
    )
}

/// Which key vault: the positional KEYVAULT, or --keyvault, or DISKVAULT_KEYVAULT.
struct KeyVaultPlace: ParsableArguments {
    @Argument(help: ArgumentHelp("The key vault's directory (or --keyvault, or DISKVAULT_KEYVAULT).", valueName: "keyvault"))
    var positional: String?
    @Option(name: .customLong("keyvault"), help: ArgumentHelp("The key vault's directory.", valueName: "keyvault"))
    var option: String?

    var path: String { positional ?? option ?? Environment.value("DISKVAULT_KEYVAULT") ?? "" }

    func validate() throws {
        if let positional, let option, positional != option {
            throw ValidationError("two key vaults given: \(positional) and --keyvault \(option)")
        }
        if path.isEmpty { throw ValidationError("no key vault given: pass KEYVAULT, --keyvault KEYVAULT or set DISKVAULT_KEYVAULT") }
    }
}

/// The key vault administrator's passphrase: a file, the environment, or a prompt — never argv.
struct AdminOptions: ParsableArguments {
    @Option(name: .long, help: "File holding the key vault's passphrase.")
    var passphraseFile: String?

    func passphrase(confirm: Bool = false) throws -> [UInt8] {
        try Passphrase.read(file: passphraseFile, environment: "DISKVAULT_KEYVAULT_PASSPHRASE", prompt: "key vault passphrase", confirm: confirm)
    }

    func open(_ root: String) throws -> KeyVault {
        try KeyVault.open(root, passphrase: try passphrase())
    }
}

enum Passphrase {
    static func read(file: String?, environment: String, prompt: String, confirm: Bool = false) throws -> [UInt8] {
        if let file {
            var bytes = try FileSystem.readFile(file, limit: 1 << 16)
            while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
            guard !bytes.isEmpty else { throw DiskVaultError(.usage, "passphrase file is empty", path: file) }
            return bytes
        }
        if let value = Environment.value(environment), !value.isEmpty { return Array(value.utf8) }
        guard isatty(0) == 1 else {
            throw DiskVaultError(.usage, "no \(prompt): give --passphrase-file or set \(environment)")
        }
        guard let entered = getpass("\(prompt): ") else { throw DiskVaultError(.usage, "no \(prompt) entered") }
        let first = Array(String(cString: entered).utf8)
        if confirm {
            guard let again = getpass("repeat \(prompt): "), Array(String(cString: again).utf8) == first else {
                throw DiskVaultError(.usage, "the passphrases do not match")
            }
        }
        return first
    }
}

struct KeyVaultInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Create a key vault in a new or empty directory.",
        discussion: """
        Examples:
          diskvault keyvault init /srv/kv --passphrase-file admin.pass
          DISKVAULT_KEYVAULT=/srv/kv diskvault keyvault init
        """)
    @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
    @Option(name: .long, help: "scrypt cost as log2(N), 10–20 (default 15: about 32 MiB and a tenth of a second).")
    var kdfWorkFactor: Int = 15
    @OptionGroup var admin: AdminOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let kv = try KeyVault.create(keyvault, passphrase: try admin.passphrase(confirm: true), logN: kdfWorkFactor)
        output.done("created key vault \(keyvault) (id \(kv.config.id))", ["keyvault": keyvault, "id": kv.config.id])
    }
}

struct KeyVaultKey: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "key", abstract: "Create, import or delete keys (KEKs).",
                                                    subcommands: [Create.self, Import.self, Delete.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Create a standalone key.",
            discussion: """
            Examples:
              diskvault keyvault key create /srv/kv --name kek --kind rsa-3072
              diskvault keyvault key create --keyvault /srv/kv --name aes-kek --kind aes-256 --json
            """)
        @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
        @Option(name: .long, help: "Key name.") var name: String
        @Option(name: .long, help: "rsa-2048, rsa-3072 or aes-256.") var kind: String = "rsa-2048"
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            guard let keyKind = KeyVault.KeyKind(rawValue: kind), keyKind != .rsa4096 else {
                throw DiskVaultError(.usage, "key kind must be rsa-2048, rsa-3072 or aes-256, not \(kind)")
            }
            let record = try admin.open(keyvault).createKey(name: name, kind: keyKind)
            output.done("created key \(record.name) version \(record.version) (\(record.kind))", KeyFields(record))
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Import a standalone PEM private key (certificates are refused).",
            discussion: """
            Examples:
              diskvault keyvault key import /srv/kv --name kek --file kek.pem
            """)
        @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
        @Option(name: .long, help: "Key name.") var name: String
        @Option(name: .long, help: "PEM file holding the private key.") var file: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            let pem = try FileSystem.readFile(file, limit: 1 << 20)
            let record = try admin.open(keyvault).importKey(name: name, pem: pem, source: file)
            output.done("imported key \(record.name) version \(record.version) (\(record.kind))", KeyFields(record))
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete",
            abstract: "Delete a key and all its versions.",
            discussion: """
            Examples:
              diskvault keyvault key delete /srv/kv --name old-kek
            """)
        @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
        @Option(name: .long, help: "Its name.") var name: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try admin.open(keyvault).deleteKey(name: name)
            output.done("deleted key \(name)", ["key": name])
        }
    }
}

struct KeyVaultSecret: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "secret", abstract: "Set, get or delete secrets (BEKs).",
                                                    subcommands: [Set.self, Get.self, Delete.self])

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Store a new version of a secret: a LUKS passphrase or key file, or a BitLocker .BEK.",
            discussion: """
                The file is stored byte for byte: a passphrase written with `echo` ends with a newline, which is \
                part of the key unless --strip-newline drops it. --check IMAGE tries the key on the disk's header \
                first and stores nothing when it does not open it.

                Examples:
                  diskvault keyvault secret set --keyvault /kv --name web-bek --file web.key --volume 8d1e…-uuid --check web.img
                  printf %s "$PASS" > p && diskvault keyvault secret set /kv --name db --file p --wrap-key kek --check /dev/vg0/db
                """)
        @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
        @Option(name: .long, help: "Secret name.") var name: String
        @Option(name: .long, help: "File holding the BEK.") var file: String
        @Option(name: .long, help: "Wrap the BEK with this key (KEK) before storing it.") var wrapKey: String?
        @Option(name: .long, help: "The volume it unlocks: a LUKS UUID or a BitLocker key GUID (the .BEK file's name).")
        var volume: String?
        @Option(name: .long, help: "A tag K=V (repeatable).") var tag: [String] = []
        @Option(name: .long, help: ArgumentHelp("Check the key against this disk image's LUKS or BitLocker header before storing it.", valueName: "image"))
        var check: String?
        @Flag(name: .long, help: "Drop a trailing newline (or CR LF) from the file, as `echo KEY > FILE` leaves one.") var stripNewline = false
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            var tags: [String: String] = [:]
            for t in tag {
                guard let eq = t.firstIndex(of: "="), eq != t.startIndex else { throw DiskVaultError(.usage, "--tag needs K=V, not \(t)") }
                tags[String(t[..<eq])] = String(t[t.index(after: eq)...])
            }
            var value = try FileSystem.readFile(file, limit: 1 << 16)
            if stripNewline {
                if value.last == 0x0A { value.removeLast() }
                if value.last == 0x0D { value.removeLast() }
            }
            var volumeID = volume
            // A .BEK file is named by its key's GUID: link it to that volume key unless told otherwise.
            if volumeID == nil, file.uppercased().hasSuffix(".BEK") {
                volumeID = String(FileSystem.lastComponent(of: file).dropLast(4))
            }
            if let check {
                let (label, how) = try KeyCheck.check(key: value, image: check, volume: volumeID)
                Terminal.raw("diskvault: the key opens \(label) of \(check) (\(how))")
            }
            let record = try admin.open(keyvault).setSecret(name: name, value: value, wrapKey: wrapKey, volume: volumeID, tags: tags)
            output.done("stored secret \(record.name) version \(record.version)\(record.wrap.map { " wrapped by key \($0.key) (\($0.algorithm))" } ?? "")\(record.volume.map { " for volume \($0)" } ?? "")",
                        SecretFields(name: record.name, version: record.version, volume: record.volume, wrappedBy: record.wrap?.key))
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get",
            abstract: "Write a secret's BEK (unwrapped) to a file.",
            discussion: """
            Examples:
              diskvault keyvault secret get /srv/kv --name web-bek --out web.key
              diskvault keyvault secret get /srv/kv --name web-bek --secret-version 2 --out web-v2.key
            """)
        @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
        @Option(name: .long, help: "Its name.") var name: String
        @Option(name: .customLong("secret-version"), help: "Which version (default: the newest).") var version: Int?
        @Option(name: .long, help: "Where to write the BEK (created with mode 0600).") var out: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            let kv = try admin.open(keyvault)
            let record = try kv.secret(name: name, version: version)
            try writePrivateFile(out, try kv.unwrappedValue(of: record))
            output.done("wrote secret \(record.name) version \(record.version) to \(out)", ["secret": record.name, "version": "\(record.version)", "file": out])
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete",
            abstract: "Delete a secret and all its versions.",
            discussion: """
            Examples:
              diskvault keyvault secret delete /srv/kv --name old-bek
            """)
        @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
        @Option(name: .long, help: "Its name.") var name: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try admin.open(keyvault).deleteSecret(name: name)
            output.done("deleted secret \(name)", ["secret": name])
        }
    }
}

struct KeyVaultAccessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "access", abstract: "Grant, revoke or rotate a principal's access.",
                                                    subcommands: [Grant.self, Revoke.self, Rotate.self])

    static func permissions(_ text: String?) throws -> [KeyVault.Permission] {
        guard let text, !text.isEmpty else { return [] }
        return try text.split(separator: ",").map { p in
            guard let perm = KeyVault.Permission(rawValue: p.trimmingCharacters(in: .whitespaces)) else {
                throw DiskVaultError(.usage, "unknown permission \"\(p)\" (use \(KeyVault.Permission.allCases.map(\.rawValue).joined(separator: ",")))")
            }
            return perm
        }
    }

    struct Grant: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "grant",
            abstract: "Grant permissions and issue the principal's credential file.",
            discussion: """
            Examples:
              diskvault keyvault access grant /srv/kv --principal backup-host1 --keys get,list --secrets get,list --credential-out host1.cred
              diskvault keyvault access grant /srv/kv --principal restorer --keys get,list,unwrap,restore --secrets get,list,restore --credential-out restorer.cred
            """)
        @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
        @Option(name: .long, help: "The principal: a backup host or a restorer, by name.") var principal: String
        @Option(name: .long, help: "Permissions on keys: get,list,set,delete,wrap,unwrap,backup,restore.") var keys: String?
        @Option(name: .long, help: "Permissions on secrets: get,list,set,delete,backup,restore.") var secrets: String?
        @Option(name: .long, help: "Where to write the credential (mode 0600).") var credentialOut: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            guard !FileSystem.exists(credentialOut) else { throw DiskVaultError(.alreadyExists, "credential file exists (it must not exist yet)", path: credentialOut) }
            let keyPermissions = try KeyVaultAccessCommand.permissions(keys)
            if keyPermissions.contains(.wrap) && !keyPermissions.contains(.unwrap) {
                Terminal.warning("wrap on keys reveals every AES KEK (AES key wrap needs the key itself): a principal that must not unwrap should wrap with RSA KEKs")
            }
            let kv = try admin.open(keyvault)
            defer { for q in kv.quarantined { Terminal.warning("moved aside (it does not check or open): \(q)") } }
            let credential = try kv.grantAccess(
                principal: principal, keys: try KeyVaultAccessCommand.permissions(keys), secrets: try KeyVaultAccessCommand.permissions(secrets))
            try writePrivateFile(credentialOut, credential)
            output.done("granted \(principal): keys [\(keys ?? "")], secrets [\(secrets ?? "")]; credential in \(credentialOut)",
                        ["principal": principal, "keys": keys ?? "", "secrets": secrets ?? "", "credential": credentialOut])
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate",
            abstract: "Issue a principal a new credential with the same permissions; the old one stops working.",
            discussion: """
            Every capability the old credential held gets a new key and every item is sealed again, as on revoke.

            Examples:
              diskvault keyvault access rotate /srv/kv --principal backup-host1 --credential-out host1.cred.new
            """)
        @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
        @Option(name: .long, help: "The principal: a backup host or a restorer, by name.") var principal: String
        @Option(name: .long, help: "Where to write the new credential (mode 0600).") var credentialOut: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            guard !FileSystem.exists(credentialOut) else { throw DiskVaultError(.alreadyExists, "credential file exists (it must not exist yet)", path: credentialOut) }
            let kv = try admin.open(keyvault)
            let credential = try kv.rotateCredential(principal: principal)
            for q in kv.quarantined { Terminal.warning("moved aside (it does not check or open): \(q)") }
            try writePrivateFile(credentialOut, credential)
            output.done("rotated the credential of \(principal); new credential in \(credentialOut)", ["principal": principal, "credential": credentialOut])
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Revoke a principal's access; its credential stops working.",
            discussion: """
            Every capability it held gets a new key and every item is sealed again: what it copied out opens nothing written from now on.

            Examples:
              diskvault keyvault access revoke /srv/kv --principal backup-host1
            """)
        @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
        @Option(name: .long, help: "The principal: a backup host or a restorer, by name.") var principal: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            let kv = try admin.open(keyvault)
            try kv.revokeAccess(principal: principal)
            for q in kv.quarantined { Terminal.warning("moved aside (it does not check or open): \(q)") }
            output.done("revoked \(principal)", ["principal": principal])
        }
    }
}

struct KeyVaultEscrow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "escrow",
        abstract: "Escrow the key vault's keys and secrets to an encrypted vault, so that its points' keys outlive the key vault.",
        discussion: """
            An escrowed key vault seals every key and secret to the vault's escrow key as well (`diskvault vault \
            escrow init`: an X25519 key pair whose private half is sealed under a recovery passphrase of its own, \
            not the vault's, so the hosts that back up into the vault cannot read the keys). If the key vault is \
            lost, `diskvault keys restore --keyvault NEW --recovery-passphrase-file R` puts the keys and secrets \
            of a point back into a new one, with their names, versions, tags and KEK wrapping. Whoever holds the \
            recovery passphrase and the vault's passphrase can read every key and secret of this key vault: keep \
            the recovery passphrase offline, as guarded as the key vault.

            The key vault's passphrase comes from --passphrase-file or DISKVAULT_KEYVAULT_PASSPHRASE; the vault's \
            from --vault-passphrase-file or DISKVAULT_PASSPHRASE (it proves the escrow key is the vault's own).

            Examples:
              diskvault keyvault escrow add /keys/kv --vault /backup/vault --passphrase-file kv.pass --vault-passphrase-file vault.pass
              diskvault keyvault escrow list /keys/kv --passphrase-file kv.pass
              diskvault keyvault escrow remove /keys/kv --vault-id 5a14... --passphrase-file kv.pass
            """,
        subcommands: [Add.self, Remove.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Escrow every key and secret to an encrypted vault (every item is sealed again).",
            discussion: """
            Examples:
              diskvault keyvault escrow add /srv/kv --vault /backup/v --vault-passphrase-file v.pass
            """)
        @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
        @Option(name: .long, help: "The encrypted vault to escrow to.") var vault: String
        @Option(name: .long, help: ArgumentHelp("File holding the vault's passphrase.", valueName: "file")) var vaultPassphraseFile: String?
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            let file = vaultPassphraseFile
            let v = try Vault.open(vault) { () throws(DiskVaultError) -> [UInt8] in
                do { return try Passphrase.read(file: file, environment: "DISKVAULT_PASSPHRASE", prompt: "vault passphrase") } catch let e as DiskVaultError {
                    throw e.code == .usage && file == nil ? DiskVaultError(.usage, "no passphrase for vault \(vault): give --vault-passphrase-file or set DISKVAULT_PASSPHRASE") : e
                } catch { throw DiskVaultError(.usage, "\(error)") }
            }
            guard v.isEncrypted else {
                throw DiskVaultError(.usage, "vault \(vault) is not encrypted: a clear vault keeps no escrow (make an encrypted one with `diskvault vault init`)")
            }
            guard let escrow = try v.escrowKey() else {
                throw DiskVaultError(.notFound, "vault \(vault) has no escrow key: make one with `diskvault vault escrow init --vault \(vault)`")
            }
            let kv = try admin.open(keyvault)
            let moved = try kv.addEscrow(vaultID: v.config.id, publicKey: escrow.publicKeyBytes, location: FileSystem.absolutePath(vault))
            for q in moved { Terminal.warning("moved aside (it does not check or open): \(q)") }
            Terminal.warning("whoever holds the recovery passphrase of vault \(vault)'s escrow key (and its passphrase) can now read every key and secret of key vault \(keyvault)")
            output.done("key vault \(keyvault) escrows its keys and secrets to vault \(vault) (id \(v.config.id)); points backed up from now on carry keys that outlive the key vault",
                        ["keyvault": keyvault, "vault": vault, "vaultID": v.config.id])
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Stop escrowing to a vault (every item is sealed again without it).",
            discussion: """
            Key backups already stored in that vault stay restorable with its passphrase; only new ones are not escrowed.

            Examples:
              diskvault keyvault escrow remove /srv/kv --vault-id 3598ecfa17d61e1c405fefaef2d90e53
            """)
        @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
        @Option(name: .long, help: "The vault's id (see `keyvault escrow list`).") var vaultID: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            let kv = try admin.open(keyvault)
            let moved = try kv.removeEscrow(vaultID: vaultID)
            for q in moved { Terminal.warning("moved aside (it does not check or open): \(q)") }
            output.done("key vault \(keyvault) no longer escrows to vault \(vaultID)", ["keyvault": keyvault, "vaultID": vaultID])
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "The vaults the key vault escrows to.",
            discussion: """
            Examples:
              diskvault keyvault escrow list /srv/kv --json
            """)
        @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
        @OptionGroup var admin: AdminOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            let vaults = try admin.open(keyvault).escrowVaults()
            if output.json { printJSON(EscrowListing(vaults: vaults)); return }
            if vaults.isEmpty { print("key vault \(keyvault) escrows to no vault") }
            for v in vaults { print("\(v.vaultID)  \(v.vault)  (since epoch \(v.since))") }
        }
    }
}

struct KeyVaultPasswd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passwd", abstract: "Change the key vault's passphrase (the administrator's keys are sealed again).",
        discussion: """
        The current passphrase comes from --passphrase-file, DISKVAULT_KEYVAULT_PASSPHRASE or a prompt; the new one from --new-passphrase-file or a prompt (asked twice).

        Examples:
          diskvault keyvault passwd /srv/kv --passphrase-file old.pass --new-passphrase-file new.pass
        """)
    @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
    @Option(name: .long, help: "File holding the new passphrase.") var newPassphraseFile: String?
    @Option(name: .long, help: "scrypt cost as log2(N), 10–20 (default: as before).") var kdfWorkFactor: Int?
    @OptionGroup var admin: AdminOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let kv = try admin.open(keyvault)
        let new = try Passphrase.read(file: newPassphraseFile, environment: "DISKVAULT_KEYVAULT_NEW_PASSPHRASE", prompt: "new key vault passphrase", confirm: true)
        try kv.changePassphrase(new, logN: kdfWorkFactor)
        output.done("changed the passphrase of key vault \(keyvault)", ["keyvault": keyvault])
    }
}

struct KeyVaultUpgrade: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade", abstract: "Upgrade a key vault of format 1, whose permissions were not enforced by cryptography.",
        discussion: """
            Keeps the key vault's id, every key and secret version and every grant. Each principal gets a new \
            credential (<principal>.cred in --credentials-out); the old credentials stop working. Points backed up \
            before the upgrade keep their key backups: the administrator and principals with restore on secrets open them.

            Example:
              diskvault keyvault upgrade /backup/kv --credentials-out /root/new-credentials
            """)
    @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
    @Option(name: .long, help: "Folder for the principals' new credential files (created; files mode 0600).") var credentialsOut: String?
    @OptionGroup var admin: AdminOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let result = try KeyVault.upgrade(keyvault, passphrase: try admin.passphrase(), credentialsOut: credentialsOut)
        if output.json { printJSON(result); return }
        if result.resumed {
            print("key vault \(keyvault) (id \(result.id)) was upgraded already; removed what the interrupted upgrade left")
            return
        }
        print("upgraded key vault \(keyvault) (id \(result.id)) to format 2: \(result.keys) key and \(result.secrets) secret versions")
        for (p, f) in result.credentials.sorted(by: { $0.key < $1.key }) {
            let g = result.grants[p]
            print("new credential for \(p): \(f) (keys [\(g?.keys.map(\.rawValue).joined(separator: ",") ?? "")], secrets [\(g?.secrets.map(\.rawValue).joined(separator: ",") ?? "")])")
        }
        if !result.grants.isEmpty {
            Terminal.warning("format 1 let every principal rewrite the grants and items: check the grants above (keyvault list), and revoke what you did not grant")
        }
    }
}

struct KeyVaultList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List keys, secrets and access (never their values).",
        discussion: """
        Examples:
          diskvault keyvault list /srv/kv
          DISKVAULT_KEYVAULT=/srv/kv diskvault keyvault list --json | jq -r '.secrets[].name'
        """)
    @OptionGroup var place: KeyVaultPlace
        var keyvault: String { place.path }
    @OptionGroup var admin: AdminOptions
    @OptionGroup var output: OutputOptions

    struct Listing: Encodable {
        struct Secret: Encodable { var name: String; var version: Int; var volume: String?; var wrappedBy: String?; var tags: [String: String]; var created: String }
        struct Key: Encodable { var name: String; var version: Int; var kind: String; var created: String }
        var keyVault: String
        var id: String
        var keys: [Key]
        var secrets: [Secret]
        var access: [String: KeyVault.Grant]
    }

    func run() throws {
        let kv = try admin.open(keyvault)
        let listing = Listing(
            keyVault: keyvault, id: kv.config.id,
            keys: try kv.keys().map { .init(name: $0.name, version: $0.version, kind: $0.kind.rawValue, created: $0.created) },
            secrets: try kv.secrets().map { .init(name: $0.name, version: $0.version, volume: $0.volume, wrappedBy: $0.wrap?.key, tags: $0.tags, created: $0.created) },
            access: try kv.accessPolicy())
        if output.json { printJSON(listing); return }
        print("key vault \(keyvault) (id \(kv.config.id))")
        for k in listing.keys { print("key     \(k.name) v\(k.version) \(k.kind)") }
        for s in listing.secrets { print("secret  \(s.name) v\(s.version)\(s.volume.map { " volume \($0)" } ?? "")\(s.wrappedBy.map { " wrapped by \($0)" } ?? "")") }
        for (p, g) in listing.access.sorted(by: { $0.key < $1.key }) {
            print("access  \(p): keys [\(g.keys.map(\.rawValue).joined(separator: ","))] secrets [\(g.secrets.map(\.rawValue).joined(separator: ","))]")
        }
    }
}

/// Writes a file only its owner can read (keys, credentials); refuses to overwrite.
func writePrivateFile(_ path: String, _ bytes: [UInt8]) throws {
    let file = try FileDescriptor(path: path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600, doing: "cannot create (it must not exist yet)")
    try bytes.withUnsafeBytes { try file.writeAll([$0]) }
    try file.sync()
    try file.close()
}

/// A key's fields in --json output (never its material).
struct KeyFields: Encodable {
    var name: String
    var version: Int
    var kind: String
    init(_ record: KeyVault.KeyRecord) {
        name = record.name
        version = record.version
        kind = record.kind.rawValue
    }
}

/// A secret's fields in --json output (never its value).
struct SecretFields: Encodable {
    var name: String
    var version: Int
    var volume: String?
    var wrappedBy: String?
}

struct EscrowListing: Encodable {
    var vaults: [KeyVault.EscrowVault]
}
