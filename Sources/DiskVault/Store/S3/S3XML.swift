import Foundation

/// The few S3 XML answers the backend reads (ListObjectsV2's ListBucketResult, and Error), taken apart by
/// element name. The store's answer is not trusted: a malformed one yields what could be read, and an element
/// never read past the bytes given.
enum S3XML {
    struct Listing {
        struct Object {
            var key: String
            var size: UInt64
            /// Seconds since 1970, from LastModified (server clock); nil when missing or unreadable.
            var modified: Double?
        }
        var objects: [Object] = []
        var commonPrefixes: [String] = []
        var isTruncated = false
        var nextToken: String?
    }

    static func listing(_ xml: [UInt8]) -> Listing {
        let text = String(decoding: xml, as: UTF8.self)
        var result = Listing()
        for block in elements("Contents", in: text) {
            guard let key = elements("Key", in: block).first.map(decode) else { continue }
            let size = elements("Size", in: block).first.flatMap { UInt64($0.trimmingCharacters(in: .whitespaces)) } ?? 0
            let modified = elements("LastModified", in: block).first.flatMap { parseTime(decode($0)) }
            result.objects.append(Listing.Object(key: key, size: size, modified: modified))
        }
        for block in elements("CommonPrefixes", in: text) {
            if let p = elements("Prefix", in: block).first.map(decode) { result.commonPrefixes.append(p) }
        }
        result.isTruncated = elements("IsTruncated", in: text).first?.trimmingCharacters(in: .whitespaces) == "true"
        result.nextToken = elements("NextContinuationToken", in: text).first.map(decode).flatMap { $0.isEmpty ? nil : $0 }
        return result
    }

    /// An error answer's Code and Message, when it has them.
    static func error(_ xml: [UInt8]) -> (code: String?, message: String?) {
        let text = String(decoding: xml, as: UTF8.self)
        return (elements("Code", in: text).first.map(decode), elements("Message", in: text).first.map(decode))
    }

    /// The contents of every `<name>…</name>` (or `<name attr…>…</name>`) in `text`, in order, not nested.
    static func elements(_ name: String, in text: String) -> [String] {
        var found: [String] = []
        var rest = text[...]
        let close = "</\(name)>"
        while let open = rest.range(of: "<\(name)") {
            let after = rest[open.upperBound...]
            guard let first = after.first else { break }
            // <Name> or <Name …>, not <NameOther>.
            guard first == ">" || first == " " else {
                rest = after
                continue
            }
            guard let gt = after.firstIndex(of: ">") else { break }
            let body = after[after.index(after: gt)...]
            guard let end = body.range(of: close) else { break }
            found.append(String(body[..<end.lowerBound]))
            rest = body[end.upperBound...]
        }
        return found
    }

    /// XML character data with its five entities and numeric references resolved.
    static func decode(_ s: String) -> String {
        guard s.contains("&") else { return s }
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            guard c == "&", let semi = s[i...].firstIndex(of: ";"), s.distance(from: i, to: semi) <= 10 else {
                out.append(c)
                i = s.index(after: i)
                continue
            }
            let entity = s[s.index(after: i)..<semi]
            switch entity {
            case "amp": out.append("&")
            case "lt": out.append("<")
            case "gt": out.append(">")
            case "quot": out.append("\"")
            case "apos": out.append("'")
            default:
                var scalar: UInt32?
                if entity.hasPrefix("#x") || entity.hasPrefix("#X") { scalar = UInt32(entity.dropFirst(2), radix: 16) }
                else if entity.hasPrefix("#") { scalar = UInt32(entity.dropFirst()) }
                if let v = scalar, let u = UnicodeScalar(v) { out.unicodeScalars.append(u) } else { out += s[i...semi] }
            }
            i = s.index(after: semi)
        }
        return out
    }

    /// An ISO 8601 time as S3 writes it (2026-12-03T14:20:05.000Z, fraction optional).
    static func parseTime(_ s: String) -> Double? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d.timeIntervalSince1970 }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)?.timeIntervalSince1970
    }

    /// An HTTP date (the Date and Last-Modified headers: "Thu, 03 Dec 2026 14:20:05 GMT").
    static func parseHTTPDate(_ s: String) -> Double? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: s)?.timeIntervalSince1970
    }
}
