import Foundation

/// Where an object-store vault lives, as restic spells it: `s3:http://HOST[:PORT]/BUCKET[/PREFIX]` or
/// `s3:https://…`. Requests use path-style addressing (`ENDPOINT/BUCKET/KEY`), which every S3-compatible
/// store takes (SeaweedFS, MinIO, Ceph RGW, AWS S3).
public struct S3Location: Sendable, Equatable, CustomStringConvertible {
    /// `http://HOST[:PORT]` or `https://HOST[:PORT]`, without a trailing slash.
    public var endpoint: String
    public var bucket: String
    /// Key prefix of the vault's objects inside the bucket, without leading or trailing slashes; may be empty.
    public var prefix: String

    public var description: String { "s3:\(endpoint)/\(bucket)\(prefix.isEmpty ? "" : "/\(prefix)")" }

    public static func isS3(_ location: String) -> Bool { location.hasPrefix("s3:") }

    public static func parse(_ location: String) throws(DiskVaultError) -> S3Location {
        func refuse(_ why: String) -> DiskVaultError {
            DiskVaultError(.usage, "object-store vault \(location): \(why); expected s3:http://HOST:PORT/BUCKET/PREFIX or s3:https://…")
        }
        guard location.hasPrefix("s3:") else { throw refuse("not an s3: location") }
        let rest = String(location.dropFirst(3))
        let scheme: String
        if rest.hasPrefix("http://") { scheme = "http" } else if rest.hasPrefix("https://") { scheme = "https" } else {
            throw refuse("the address must start with http:// or https://")
        }
        let afterScheme = rest.dropFirst(scheme.count + 3)
        let pieces = afterScheme.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard let host = pieces.first, !host.isEmpty else { throw refuse("no host") }
        guard !host.contains("@"), !host.contains("?"), !host.contains("#") else {
            throw refuse("credentials and queries do not belong in the address (use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        }
        guard pieces.count > 1, !pieces[1].isEmpty else { throw refuse("no bucket") }
        let bucket = pieces[1]
        // Bucket names as S3 allows them: 3–63 of a-z 0-9 . -, starting and ending with a letter or digit.
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-")
        guard (3...63).contains(bucket.count), bucket.allSatisfy({ allowed.contains($0) }),
            bucket.first.map({ $0.isLetter || $0.isNumber }) == true, bucket.last.map({ $0.isLetter || $0.isNumber }) == true
        else { throw refuse("\"\(bucket)\" is not a bucket name (3 to 63 lower-case letters, digits, dots and hyphens)") }
        let prefixParts = pieces.dropFirst(2).filter { !$0.isEmpty }
        for part in prefixParts where part == "." || part == ".." || part.contains("?") || part.contains("#") {
            throw refuse("the prefix may not hold \"\(part)\"")
        }
        return S3Location(endpoint: "\(scheme)://\(host)", bucket: bucket, prefix: prefixParts.joined(separator: "/"))
    }

    /// The credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and AWS_DEFAULT_REGION or
    /// AWS_REGION, default us-east-1); nil when no key is set, and requests then go unsigned.
    static func credentials(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(DiskVaultError) -> HTTPClient.Credentials? {
        let key = environment["AWS_ACCESS_KEY_ID"] ?? "", secret = environment["AWS_SECRET_ACCESS_KEY"] ?? ""
        if key.isEmpty && secret.isEmpty { return nil }
        guard !key.isEmpty, !secret.isEmpty else {
            throw DiskVaultError(.usage, "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
        }
        let region = environment["AWS_DEFAULT_REGION"].flatMap { $0.isEmpty ? nil : $0 } ?? environment["AWS_REGION"].flatMap { $0.isEmpty ? nil : $0 } ?? "us-east-1"
        guard !(key + secret + region).contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\0" }), !key.contains(":"), !region.contains(":") else {
            throw DiskVaultError(.usage, "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or the region holds a character that cannot be sent")
        }
        return HTTPClient.Credentials(accessKey: key, secretKey: secret, region: region)
    }
}

/// URI encoding as Signature V4 wants it: every byte but A–Z a–z 0–9 - . _ ~ as %XX (upper case); `/` kept
/// in paths.
enum URIEncoding {
    private static let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)

    static func encode(_ s: String, keepSlash: Bool) -> String {
        var out = ""
        for byte in s.utf8 {
            if unreserved.contains(byte) || (keepSlash && byte == UInt8(ascii: "/")) {
                out.unicodeScalars.append(UnicodeScalar(byte))
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// `name=value` pairs sorted by name (the canonical order a signer computes anyway), each encoded.
    static func query(_ items: [(String, String)]) -> String {
        items.sorted { $0.0 < $1.0 }.map { "\(encode($0.0, keepSlash: false))=\(encode($0.1, keepSlash: false))" }.joined(separator: "&")
    }
}
