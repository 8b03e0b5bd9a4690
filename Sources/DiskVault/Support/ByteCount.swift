/// Human-readable sizes and a parser for sizes on the command line ("4MiB", "64K", "1048576").
public enum ByteCount {
    public static func format(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format1(value)) + " " + units[unit]
    }

    public static func formatRate(_ bytesPerSecond: Double) -> String {
        format(UInt64(max(0, bytesPerSecond))) + "/s"
    }

    static func format1(_ v: Double) -> String {
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// Parses "4MiB", "4M", "4m", "65536", "64KiB". Binary units throughout.
    public static func parse(_ text: String) -> UInt64? {
        let t = text.trimmingCharacters(in: " ").lowercased()
        let digits = t.prefix(while: { $0.isNumber })
        guard let n = UInt64(digits), !digits.isEmpty else { return nil }
        let shift: UInt64
        switch t.dropFirst(digits.count) {
        case "", "b": shift = 0
        case "k", "kb", "kib": shift = 10
        case "m", "mb", "mib": shift = 20
        case "g", "gb", "gib": shift = 30
        default: return nil
        }
        let (v, overflow) = n.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? nil : v
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}
