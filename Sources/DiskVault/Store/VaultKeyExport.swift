import Foundation

/// An encrypted vault's key, exported: what vault.json holds that nothing else can give back — the vault's
/// id, chunk size and layout, and the master key sealed under the passphrase (still sealed: the export is no
/// more secret than vault.json, and useless without the passphrase). As JSON, or as text a person can type
/// back: lines of base64, each with its number and a CRC-32 of its text, so that a typo is found on its line.
public struct VaultKeyExport: Codable, Sendable, Equatable {
    public static let formatName = "diskvault-vault-key"
    public var format: String = formatName
    public var version: Int = 1
    public var id: String
    public var vaultVersion: Int
    public var created: String
    public var chunkSize: Int
    public var chunkPrefixDigits: Int?
    public var encryption: VaultConfig.Encryption

    public init(_ config: VaultConfig) {
        id = config.id; vaultVersion = config.version; created = config.created; chunkSize = config.chunkSize
        chunkPrefixDigits = config.chunkPrefixDigits; encryption = config.encryption
    }

    /// The vault.json this export gives back.
    public var config: VaultConfig {
        VaultConfig(format: VaultConfig.formatName, version: vaultVersion, id: id, created: created, chunkSize: chunkSize,
                    hash: "sha256", compression: "zlib", encryption: encryption, chunkPrefixDigits: chunkPrefixDigits)
    }

    static let paperHeader = "diskvault vault key"

    static func number(_ n: Int) -> String { n < 10 ? "0\(n):" : "\(n):" }
    static func hex8(_ v: UInt32) -> String { let h = String(v, radix: 16); return String(repeating: "0", count: 8 - h.count) + h }
    static let lineLength = 48

    /// The paper form: a header naming the vault, then numbered lines "NN: BASE64 CRC".
    public func paper() throws(DiskVaultError) -> String {
        let text = Data(try JSON.encode(self, pretty: false)).base64EncodedString()
        var lines = ["\(Self.paperHeader) \(id)"]
        var i = text.startIndex, n = 1
        while i < text.endIndex {
            let j = text.index(i, offsetBy: Self.lineLength, limitedBy: text.endIndex) ?? text.endIndex
            let piece = String(text[i..<j])
            lines.append("\(Self.number(n)) \(piece) \(Self.hex8(CRC32.checksum(Array(piece.utf8))))")
            i = j; n += 1
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Reads either form; a paper line whose checksum does not match is named.
    public static func parse(_ bytes: [UInt8], source: String) throws(DiskVaultError) -> VaultKeyExport {
        let text = String(decoding: bytes, as: UTF8.self)
        var json = bytes
        if text.hasPrefix(paperHeader) {
            var joined = ""
            for (k, raw) in text.split(separator: "\n").dropFirst().enumerated() {
                let line = raw.trimmingCharacters(in: .whitespaces)
                if line.isEmpty { continue }
                let f = line.split(separator: " ")
                guard f.count == 3, f[0] == Self.number(k + 1), let crc = UInt32(f[2], radix: 16) else {
                    throw DiskVaultError(.corrupt, "line \(k + 1) of the vault key is not \"NN: TEXT CHECKSUM\"", path: source)
                }
                guard CRC32.checksum(Array(f[1].utf8)) == crc else {
                    throw DiskVaultError(.corrupt, "line \(k + 1) of the vault key does not match its checksum (a typo?)", path: source)
                }
                joined += f[1]
            }
            guard let decoded = Data(base64Encoded: joined) else { throw DiskVaultError(.corrupt, "the vault key's lines do not make base64", path: source) }
            json = Array(decoded)
        }
        guard let key = try? JSONDecoder().decode(VaultKeyExport.self, from: Data(json)), key.format == formatName, key.version == 1 else {
            throw DiskVaultError(.corrupt, "not a diskvault vault key (from `vault key export`)", path: source)
        }
        // The same checks vault.json gets.
        _ = try VaultConfig.decode(try JSON.encode(key.config), source: source)
        guard key.encryption.isEncrypted else { throw DiskVaultError(.corrupt, "the vault key is of a clear vault", path: source) }
        return key
    }
}

extension Vault {
    /// The key of the encrypted vault at `location`, read from its vault.json without its passphrase.
    public static func exportKey(_ location: String) throws(DiskVaultError) -> VaultKeyExport {
        let storage = try storageFor(location)
        let config = try VaultConfig.decode(try storage.get("vault.json", limit: 1 << 20), source: "\(location)/vault.json")
        guard config.encryption.isEncrypted else { throw DiskVaultError(.usage, "vault \(location) is not encrypted: it has no key to export") }
        return VaultKeyExport(config)
    }

    /// Puts an exported key back: vault.json rewritten from it when it is missing or damaged, or its encryption
    /// section replaced (a passphrase changed since can be undone) when it names the same vault. The passphrase
    /// must open the key's master key before anything is written.
    public static func importKey(_ key: VaultKeyExport, into location: String, passphrase: [UInt8]) throws(DiskVaultError) {
        let storage = try storageFor(location)
        guard try storage.containerExists() else { throw DiskVaultError(.notFound, "vault does not exist", path: location) }
        if let bytes = try? storage.get("vault.json", limit: 1 << 20), let current = try? VaultConfig.decode(bytes, source: location), current.id != key.id {
            throw DiskVaultError(.usage, "the vault key is of vault \(key.id), not of vault \(location) (id \(current.id))")
        }
        _ = try VaultKeys.open(key.config, passphrase: passphrase, location: location)
        try storage.replace("vault.json", try JSON.encode(key.config))
    }
}
