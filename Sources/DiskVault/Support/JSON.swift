import Foundation

/// JSON as the vault writes it: sorted keys, pretty, one trailing newline.
public enum JSON {
    public static func encode<T: Encodable>(_ value: T, pretty: Bool = true) throws(DiskVaultError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value)) + [0x0a]
        } catch {
            throw DiskVaultError(.io, "cannot encode JSON: \(error)")
        }
    }

    public static func string<T: Encodable>(_ value: T, pretty: Bool = true) -> String {
        (try? encode(value, pretty: pretty)).map { String(decoding: $0, as: UTF8.self) } ?? "{}\n"
    }
}

/// Short text for a decoding error, without Foundation's long debug dump.
func describe(_ error: Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, _): return "missing field \"\(key.stringValue)\""
    case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
        return "wrong type at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
    case DecodingError.dataCorrupted(let c):
        return c.codingPath.isEmpty ? "not valid JSON" : "bad value at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
    default: return "\(error)"
    }
}
