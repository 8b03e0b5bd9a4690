import Foundation

/// The on-disk form of a key vault, format version 2: what each file holds and who can open or write it.
///
///     keyvault.json          Config: id, scrypt parameters, the administrator's public signing key, and the
///                            administrator's secrets (AdminSecrets) AES-256-GCM sealed under the passphrase
///     policy.json            Signed(Policy): principals, their grants and public keys, each capability's
///                            current public key                                       (administrator-signed)
///     principals/<p>.json    Signed(Slot): the capability private keys p's grant needs, each sealed to p's
///                            credential key, and p's writer certificate              (administrator-signed)
///     items/<id>             Signed(Item): one version of a key or a secret            (signed by its writer)
///     legacy.json            Signed(Legacy): the key-backup key of format 1, for points made before an upgrade
///
/// A **capability** is an X25519 key pair per permission that reveals something (`Capability`). An item is
/// made of parts (its listing; a secret's value; a key's public and private halves), each AES-256-GCM under
/// its own random key with `item:<kv id>:<item id>:<part>` as associated data; each part key is sealed
/// (`SealedToKey`) to the public key of every capability that may read that part, with
/// `wrap:<kv id>:<item id>:<part>:<capability>:<generation>` as associated data. A principal's credential file
/// holds 32 random bytes from which HKDF-SHA256 (salt: the key vault id) derives its X25519 box key
/// (info "diskvault credential box") and its Ed25519 signing key (info "diskvault credential signing"). Its
/// slot holds, sealed to its box key, the private keys of exactly the capabilities its grant names (every
/// generation), so a credential opens what its grant reveals and nothing more, whatever the command line does.
/// The administrator's passphrase opens AdminSecrets: the signing key and every capability's private keys.
///
/// **Signed files**: every file but keyvault.json is a `SignedFile`. Ed25519 over
/// `"diskvault-keyvault-signed v1\0" + kind + "\0" + path + "\0" + payload`, so a file is bound to its kind and
/// its path. The policy, slots and writer certificates are signed by the administrator, whose public key is
/// pinned in keyvault.json and in every credential file. An item is signed by the administrator or by a
/// principal whose grant lets it write (`set` or `restore` on the item's scope): such an item carries the
/// writer's certificate, and is accepted only while the current policy names that writer with that key and
/// grant. A file anyone else wrote, or moved, is refused with a message naming it.
///
/// **Escrow**: the administrator may name vaults in the policy (`Policy.escrow`, by vault id, with the vault's
/// escrow public key, `VaultEscrowKey`). Every part key is then also sealed to each of them, under
/// the wrap name `escrow:<vault id>` with `escrow:<kv id>:<item id>:<part>:<vault id>` as associated data, so
/// that a point's key backup (copies of item files) opens with that vault's escrow key (its recovery
/// passphrase) after the key vault itself is lost. Adding or removing one seals every item again.
///
/// **Generations**: revoking a principal, or rotating its credential, makes a new generation of every
/// capability it held; from then on items are sealed to the new generation only, and every item is sealed
/// again under new part keys. The epoch counts policy changes: an item or slot written after the policy
/// says the policy was put back from an old copy, and is refused.
enum KeyVaultFormat {
    static let configFormat = "diskvault-keyvault"
    static let signedFormat = "diskvault-keyvault-signed"
    static let credentialFormat = "diskvault-keyvault-credential"
    static let version = 2
    static let policyPath = "policy.json"
    static let legacyPath = "legacy.json"
    static let itemsDirectory = "items"
    static let principalsDirectory = "principals"
    /// No signed file of a key vault is larger; a larger one is refused, never read whole.
    static let maxFileSize = 1 << 20
    /// At most this many items, this large each and in all: a key vault holds a few keys and secrets per disk
    /// (a secret is at most 64 KiB), never millions, and is read whole.
    static let maxItems = 10_000
    static let maxItemSize = 256 << 10
    static let maxItemBytes = 64 << 20

    static func slotPath(_ principal: String) -> String { "\(principalsDirectory)/\(principal).json" }
    static func itemPath(_ id: String) -> String { "\(itemsDirectory)/\(id)" }
    static func writerPath(_ principal: String) -> String { "writers/\(principal)" }
}

/// What one permission on one scope lets its holder decrypt. `set`, `delete` and `backup` reveal nothing: a
/// write is accepted by its signature (`set`, `restore`), a delete is the command line's to refuse.
enum Capability: String, Codable, Sendable, CaseIterable, Comparable {
    case secretsList = "secrets.list", secretsGet = "secrets.get", secretsRestore = "secrets.restore"
    case keysList = "keys.list", keysGet = "keys.get", keysWrap = "keys.wrap", keysUnwrap = "keys.unwrap", keysRestore = "keys.restore"

    static func < (a: Capability, b: Capability) -> Bool { a.rawValue < b.rawValue }

    /// The capabilities a grant holds.
    static func held(by grant: KeyVault.Grant) -> Set<Capability> {
        var out: Set<Capability> = []
        for p in grant.secrets {
            switch p {
            case .list: out.insert(.secretsList)
            case .get: out.insert(.secretsGet)
            case .restore: out.insert(.secretsRestore)
            default: break
            }
        }
        for p in grant.keys {
            switch p {
            case .list: out.insert(.keysList)
            case .get: out.insert(.keysGet)
            case .wrap: out.insert(.keysWrap)
            case .unwrap: out.insert(.keysUnwrap)
            case .restore: out.insert(.keysRestore)
            default: break
            }
        }
        return out
    }
}

/// The parts of an item, and which capabilities may read each.
enum ItemPart: String, Codable, Sendable {
    /// Name, version, tags or kind, and creation time: what `list` shows.
    case listing
    /// A secret's stored value: the BEK, or the BEK wrapped by a KEK.
    case value
    /// A key's public half (RSA; an AES key has none).
    case `public`
    /// A key's private half: the RSA private key or the AES key.
    case `private`

    static func readers(_ part: ItemPart, scope: KeyVault.Scope, kind: KeyVault.KeyKind? = nil) -> [Capability] {
        switch (scope, part) {
        case (.secrets, .listing): return [.secretsList, .secretsGet, .secretsRestore]
        case (.secrets, _): return [.secretsGet, .secretsRestore]
        case (.keys, .listing): return [.keysList, .keysGet, .keysWrap, .keysUnwrap, .keysRestore]
        case (.keys, .public): return [.keysGet, .keysWrap, .keysUnwrap, .keysRestore]
        // Wrapping with an AES key needs the key itself: `wrap` on an AES KEK reveals it.
        case (.keys, _): return kind == .aes256 ? [.keysWrap, .keysUnwrap, .keysRestore] : [.keysUnwrap, .keysRestore]
        }
    }
}

/// A file signed by the administrator or by a principal allowed to write it.
struct SignedFile: Codable {
    var format: String
    var kind: String
    /// The signed bytes: a JSON document (base64).
    var payload: String
    /// "admin" or "principal:<name>".
    var signer: String
    var signature: String
    /// For a principal's item: its writer certificate, a `SignedFile` of kind "writer" (JSON, base64).
    var certificate: String?

    static func message(kind: String, path: String, payload: [UInt8]) -> [UInt8] {
        Array("diskvault-keyvault-signed v1\0\(kind)\0\(path)\0".utf8) + payload
    }
}

/// The access policy.
struct Policy: Codable {
    var keyVault: String
    var epoch: Int
    var capabilities: [String: CapabilityKey]
    var principals: [String: PrincipalEntry]
    /// The epoch of the last change that sealed every item again: an item older than that is an old copy.
    var resealed: Int?
    /// vault id → the vault every item is also sealed to (absent: none).
    var escrow: [String: EscrowRecipient]?

    struct EscrowRecipient: Codable, Equatable {
        /// The vault's escrow public key (X25519, base64).
        var publicKey: String
        /// Where the vault was when it was added (shown, never trusted).
        var vault: String
        var since: Int
    }

    struct CapabilityKey: Codable, Equatable {
        var generation: Int
        var publicKey: String
    }

    struct PrincipalEntry: Codable, Equatable {
        var keys: [KeyVault.Permission]
        var secrets: [KeyVault.Permission]
        /// The X25519 public key its slot is sealed to, and the Ed25519 key it signs with (base64).
        var boxKey: String
        var signingKey: String
        /// The epoch its credential was issued in: an older slot is not its own.
        var since: Int

        var grant: KeyVault.Grant { KeyVault.Grant(keys: keys, secrets: secrets) }
    }

    func key(_ c: Capability) -> CapabilityKey? { capabilities[c.rawValue] }
}

/// A principal's slot: its capability keys, sealed to its credential.
struct Slot: Codable {
    var keyVault: String
    var principal: String
    var epoch: Int
    var boxKey: String
    /// capability → generation → the capability's private key sealed to `boxKey` (base64).
    var capabilities: [String: [String: String]]
    /// Its writer certificate: a `SignedFile` of kind "writer" (JSON, base64).
    var certificate: String
}

/// What the administrator certifies about a principal that may write items.
struct WriterCertificate: Codable {
    var keyVault: String
    var principal: String
    var signingKey: String
    var keys: [KeyVault.Permission]
    var secrets: [KeyVault.Permission]
    var since: Int

    func mayWrite(_ scope: KeyVault.Scope) -> Bool {
        let held = scope == .keys ? keys : secrets
        return held.contains(.set) || held.contains(.restore)
    }
}

/// One version of a key or a secret.
struct Item: Codable {
    var keyVault: String
    var id: String
    var scope: KeyVault.Scope
    var epoch: Int
    var parts: [String: SealedPart]

    struct SealedPart: Codable {
        /// The part, AES-256-GCM under its part key (base64).
        var box: String
        /// capability → the part key sealed to that capability's key of `generation`.
        var wraps: [String: Wrap]
    }

    struct Wrap: Codable {
        var generation: Int
        var box: String
    }
}

/// What every listing part names.
protocol ItemListing: Decodable {
    var name: String { get }
    var version: Int { get }
}

/// The listing part of a secret.
struct SecretListing: Codable, ItemListing {
    var name: String
    var version: Int
    var wrap: KeyVault.SecretRecord.Wrap?
    var tags: [String: String]
    var created: String
}

/// The listing part of a key.
struct KeyListing: Codable, ItemListing {
    var name: String
    var version: Int
    var kind: KeyVault.KeyKind
    var created: String
}

/// The administrator's secrets, sealed in keyvault.json under the passphrase.
struct AdminSecrets: Codable {
    var signingSeed: String
    /// capability → generation → private key (base64).
    var capabilities: [String: [String: String]]
    /// The newest epoch the administrator wrote.
    var epoch: Int
    /// A format-1 key vault's key-backup key, kept by an upgrade so that older points' key backups open.
    var legacyKeyBackupKey: String?
}

/// A format-1 key-backup key, sealed to the `secrets.restore` capability.
struct Legacy: Codable {
    var keyVault: String
    var generation: Int
    var sealedKey: String
}

/// A credential file, as `access grant` or `access rotate` issues it.
struct CredentialFile: Codable {
    var format: String?
    var version: Int?
    var keyVault: String
    var principal: String
    /// The administrator's public signing key the credential trusts (base64); absent in format 1.
    var adminKey: String?
    var secret: String
}

extension KeyVault.Scope: Codable {}

extension Data {
    /// base64 of these bytes.
    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
}

/// Bytes from base64, nil when it is not.
func unbase64(_ text: String) -> [UInt8]? { Data(base64Encoded: text).map(Array.init) }
