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

    /// Whether `xml` is a ListObjects answer at all (a 200 with anything else is no empty listing).
    static func isListing(_ xml: [UInt8]) -> Bool {
        String(decoding: xml.prefix(4096), as: UTF8.self).contains("<ListBucketResult")
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

    /// The failures a DeleteObjects answer lists (quiet: only these).
    static func deleteErrors(_ xml: [UInt8]) -> [(key: String, code: String, message: String)] {
        let text = String(decoding: xml, as: UTF8.self)
        return elements("Error", in: text).compactMap { block in
            guard let key = elements("Key", in: block).first.map(decode) else { return nil }
            return (key, elements("Code", in: block).first.map(decode) ?? "?", elements("Message", in: block).first.map(decode) ?? "")
        }
    }

    /// `s` as XML character data: & < > " ' as entities.
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
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

    /// An ISO 8601 time as S3 writes it (2026-12-03T14:20:05.000Z, fraction optional), to the second. Parsed
    /// by hand: Foundation's date formatters load ICU's data, megabytes of memory for one listing.
    static func parseTime(_ s: String) -> Double? {
        let u = Array(s.utf8)
        guard u.count >= 20, u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"), u[10] == UInt8(ascii: "T"),
            u[13] == UInt8(ascii: ":"), u[16] == UInt8(ascii: ":"), u.last == UInt8(ascii: "Z"),
            let year = number(u[0..<4]), let month = number(u[5..<7]), let day = number(u[8..<10]),
            let hour = number(u[11..<13]), let minute = number(u[14..<16]), let second = number(u[17..<19])
        else { return nil }
        return epoch(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
    }

    /// An HTTP date (the Date and Last-Modified headers: "Thu, 03 Dec 2026 14:20:05 GMT"), to the second.
    static func parseHTTPDate(_ s: String) -> Double? {
        let f = s.split(separator: " ")
        guard f.count == 6, f[5] == "GMT", let day = Int(f[1]), let year = Int(f[3]),
            let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].firstIndex(of: String(f[2]))
        else { return nil }
        let t = f[4].split(separator: ":")
        guard t.count == 3, let hour = Int(t[0]), let minute = Int(t[1]), let second = Int(t[2]) else { return nil }
        return epoch(year: year, month: month + 1, day: day, hour: hour, minute: minute, second: second)
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int? {
        var v = 0
        for d in digits {
            guard d >= 48, d <= 57 else { return nil }
            v = v * 10 + Int(d - 48)
        }
        return v
    }

    /// Seconds since 1970 of a UTC civil time (days from civil, proleptic Gregorian).
    static func epoch(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Double? {
        guard (1970...9999).contains(year), (1...12).contains(month), (1...31).contains(day),
            (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second) else { return nil }
        let y = month <= 2 ? year - 1 : year
        let era = y / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Double(days * 86_400 + hour * 3_600 + minute * 60 + second)
    }
}
