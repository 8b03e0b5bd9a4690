import Foundation

/// A backup policy: when a disk is backed up (wall-clock times in a time zone) and which of its points are kept.
/// Stored in the vault as `policies/<name>.json`. Pure: every evaluation takes the current time as an argument.
public struct BackupPolicy: Codable, Sendable, Equatable {
    public static let currentVersion = 1

    /// Daily at 02:00 UTC, keeping the newest point of each of the last 30 days that have points.
    public static let `default` = try! BackupPolicy(
        name: "Default", schedule: .daily(times: ["02:00"]), timeZone: "UTC", retention: Retention(keepDaily: 30))

    public let name: String
    /// Normalized: times sorted and unique as "HH:MM", days sorted Monday first and unique.
    public let schedule: Schedule
    /// IANA time zone name the schedule's times and the retention's days, weeks, months and years are in.
    public let timeZone: String
    public let retention: Retention
    /// For disks of running VMs read incrementally through qemu's dirty bitmaps: a full read (every chunk read
    /// and hashed) every this many points (nil: the default, 7, weekly for daily backups).
    public var fullReadEvery: Int? = nil
    /// Run (through /bin/sh, the failed run's JSON on standard input) when a scheduled backup under this policy
    /// fails; run-due --notify-command applies to every disk.
    public var notifyCommand: String? = nil

    /// A validated policy; throws `.usage` for a bad name, time, day, zone or count.
    public init(name: String, schedule: Schedule, timeZone: String = "UTC", retention: Retention = Retention()) throws(DiskVaultError) {
        try Self.validateName(name)
        guard TimeZone(identifier: timeZone) != nil else {
            throw DiskVaultError(.usage, "unknown time zone \"\(timeZone)\": use an IANA name such as \"Europe/Berlin\" or \"UTC\"")
        }
        try retention.validate()
        self.name = name
        self.schedule = try schedule.normalized()
        self.timeZone = timeZone
        self.retention = retention
    }

    /// A policy from command-line text: `schedule` is "daily 02:00,14:00" or "weekly sun,wed 03:30[,15:00]".
    public static func parse(
        name: String, schedule: String, timeZone: String = "UTC",
        keepLast: Int? = nil, keepDaily: Int? = nil, keepWeekly: Int? = nil, keepMonthly: Int? = nil, keepYearly: Int? = nil
    ) throws(DiskVaultError) -> BackupPolicy {
        try BackupPolicy(
            name: name, schedule: try Schedule.parse(schedule), timeZone: timeZone,
            retention: Retention(keepLast: keepLast, keepDaily: keepDaily, keepWeekly: keepWeekly, keepMonthly: keepMonthly, keepYearly: keepYearly))
    }

    /// `timeZone` as a `TimeZone`; the initializers have checked that the name is known.
    public var zone: TimeZone { TimeZone(identifier: timeZone) ?? TimeZone(identifier: "UTC")! }

    static func validateName(_ name: String) throws(DiskVaultError) { try VaultName.validate(name, as: "policy") }

    // MARK: JSON

    private enum CodingKeys: String, CodingKey { case version, name, schedule, timeZone, retention, fullReadEvery, notifyCommand }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let version = try c.decodeIfPresent(Int.self, forKey: .version) ?? Self.currentVersion
        guard version <= Self.currentVersion else {
            throw DiskVaultError(.unsupported, "policy format version \(version) is newer than this build understands (\(Self.currentVersion))")
        }
        try self.init(
            name: try c.decode(String.self, forKey: .name),
            schedule: try c.decode(Schedule.self, forKey: .schedule),
            timeZone: try c.decodeIfPresent(String.self, forKey: .timeZone) ?? "UTC",
            retention: try c.decodeIfPresent(Retention.self, forKey: .retention) ?? Retention())
        fullReadEvery = try c.decodeIfPresent(Int.self, forKey: .fullReadEvery)
        notifyCommand = try c.decodeIfPresent(String.self, forKey: .notifyCommand)
        if let n = fullReadEvery, n < 1 {
            throw DiskVaultError(.corrupt, "policy \(name): fullReadEvery \(n) is not a positive count")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.currentVersion, forKey: .version)
        try c.encode(name, forKey: .name)
        try c.encode(schedule, forKey: .schedule)
        try c.encode(timeZone, forKey: .timeZone)
        try c.encode(retention, forKey: .retention)
        try c.encodeIfPresent(fullReadEvery, forKey: .fullReadEvery)
        try c.encodeIfPresent(notifyCommand, forKey: .notifyCommand)
    }

    /// The policy as the vault stores it: pretty JSON with sorted keys and a trailing newline.
    public func encoded() throws(DiskVaultError) -> [UInt8] {
        try JSON.encode(self)
    }

    /// A policy read back from its JSON; `.corrupt` when it is not a policy, `.usage` when its values are invalid.
    public static func decode(_ bytes: [UInt8], source: String? = nil) throws(DiskVaultError) -> BackupPolicy {
        do {
            return try JSONDecoder().decode(BackupPolicy.self, from: Data(bytes))
        } catch let error as DiskVaultError {
            throw DiskVaultError(error.code, "policy: \(error.message)", path: source)
        } catch {
            throw DiskVaultError(.corrupt, "policy is damaged (\(describe(error)))", path: source)
        }
    }
}

// MARK: - Schedule

extension BackupPolicy {
    /// A day of the week, numbered as ISO 8601 does: 1 is Monday, 7 is Sunday.
    public enum Weekday: Int, Codable, Sendable, Equatable, Comparable, CaseIterable, CustomStringConvertible {
        case monday = 1, tuesday, wednesday, thursday, friday, saturday, sunday

        public var name: String {
            switch self {
            case .monday: "monday"
            case .tuesday: "tuesday"
            case .wednesday: "wednesday"
            case .thursday: "thursday"
            case .friday: "friday"
            case .saturday: "saturday"
            case .sunday: "sunday"
            }
        }

        /// "mon", "wed", …
        public var abbreviation: String { String(name.prefix(3)) }
        public var description: String { abbreviation }

        /// A day from its name, any prefix of it of three letters or more ("sun", "tues", "Thursday"), or 1 to 7.
        public init(parsing text: String) throws(DiskVaultError) {
            let t = text.trimmingCharacters(in: .whitespaces).lowercased()
            if let n = Int(t) {
                guard let day = Weekday(rawValue: n) else {
                    throw DiskVaultError(.usage, "unknown day \"\(text)\": days are numbered 1 (Monday) to 7 (Sunday)")
                }
                self = day
                return
            }
            guard t.count >= 3, let day = Weekday.allCases.first(where: { $0.name.hasPrefix(t) }) else {
                throw DiskVaultError(.usage, "unknown day \"\(text)\": use mon, tue, wed, thu, fri, sat, sun, full names, or 1 (Monday) to 7 (Sunday)")
            }
            self = day
        }

        public static func < (a: Weekday, b: Weekday) -> Bool { a.rawValue < b.rawValue }

        /// Encoded as its full name; decoded from a name, an abbreviation or a number 1 to 7.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(name)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let n = try? c.decode(Int.self) {
                self = try Weekday(parsing: String(n))
            } else {
                self = try Weekday(parsing: try c.decode(String.self))
            }
        }
    }

    /// When backups run: wall-clock times ("HH:MM", 24-hour) every day, or on some days of the week.
    public enum Schedule: Codable, Sendable, Equatable, CustomStringConvertible {
        case daily(times: [String])
        case weekly(days: [Weekday], times: [String])

        public var times: [String] {
            switch self {
            case .daily(let times), .weekly(_, let times): times
            }
        }

        /// The days it runs on: every day for a daily schedule.
        public var days: [Weekday] {
            switch self {
            case .daily: Weekday.allCases
            case .weekly(let days, _): days
            }
        }

        /// The command-line form, which `parse` reads back: "daily 02:00,14:00", "weekly wed,sun 03:30".
        public var description: String {
            switch self {
            case .daily(let times): "daily \(times.joined(separator: ","))"
            case .weekly(let days, let times): "weekly \(days.map(\.abbreviation).joined(separator: ",")) \(times.joined(separator: ","))"
            }
        }

        static let syntax = "use \"daily HH:MM[,HH:MM…]\" or \"weekly DAY[,DAY…] HH:MM[,HH:MM…]\""

        /// "daily 02:00,14:00" or "weekly sun,wed 03:30"; case and spaces after commas do not matter.
        public static func parse(_ text: String) throws(DiskVaultError) -> Schedule {
            // "sun, wed" and "02:00 ,14:00" read as "sun,wed" and "02:00,14:00".
            let joined = text.split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ",")
            let words = joined.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let kind = words.first?.lowercased() else {
                throw DiskVaultError(.usage, "empty schedule: \(syntax)")
            }
            func list(_ word: String) -> [String] { word.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            let schedule: Schedule
            switch kind {
            case "daily":
                guard words.count == 2 else {
                    throw DiskVaultError(.usage, words.count < 2 ? "schedule \"\(text)\" has no times: \(syntax)" : "cannot read schedule \"\(text)\": \(syntax)")
                }
                schedule = .daily(times: list(words[1]))
            case "weekly":
                guard words.count == 3 else {
                    throw DiskVaultError(.usage, words.count < 3 ? "schedule \"\(text)\" needs days and times: \(syntax)" : "cannot read schedule \"\(text)\": \(syntax)")
                }
                var days: [Weekday] = []
                for word in list(words[1]) { days.append(try Weekday(parsing: word)) }
                schedule = .weekly(days: days, times: list(words[2]))
            default:
                throw DiskVaultError(.usage, "unknown schedule \"\(text)\": \(syntax)")
            }
            return try schedule.normalized()
        }

        /// Times checked and written "HH:MM", sorted and unique; days sorted and unique; neither empty.
        func normalized() throws(DiskVaultError) -> Schedule {
            var minutes: [Int] = []
            for time in times {
                guard let m = Self.minuteOfDay(time) else {
                    throw DiskVaultError(.usage, "invalid time \"\(time)\" in schedule: use HH:MM, 24-hour, 00:00 to 23:59")
                }
                minutes.append(m)
            }
            guard !minutes.isEmpty else { throw DiskVaultError(.usage, "schedule has no times: give at least one HH:MM") }
            let normalTimes = Set(minutes).sorted().map(Self.format)
            switch self {
            case .daily:
                return .daily(times: normalTimes)
            case .weekly(let days, _):
                guard !days.isEmpty else { throw DiskVaultError(.usage, "weekly schedule has no days: give at least one of mon … sun") }
                return .weekly(days: Set(days).sorted(), times: normalTimes)
            }
        }

        /// "H:MM" or "HH:MM" as minutes after midnight, nil when not a time of day.
        static func minuteOfDay(_ text: String) -> Int? {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, (1...2).contains(parts[0].count), parts[1].count == 2,
                parts.allSatisfy({ $0.allSatisfy { $0 >= "0" && $0 <= "9" } }),
                let h = Int(parts[0]), let m = Int(parts[1]), h < 24, m < 60
            else { return nil }
            return h * 60 + m
        }

        static func format(_ minute: Int) -> String {
            let h = minute / 60, m = minute % 60
            return (h < 10 ? "0\(h)" : "\(h)") + ":" + (m < 10 ? "0\(m)" : "\(m)")
        }

        // JSON: {"frequency": "daily", "times": [...]} or {"frequency": "weekly", "days": ["sunday"], "times": [...]}.
        private enum CodingKeys: String, CodingKey { case frequency, days, times }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let frequency = try c.decode(String.self, forKey: .frequency)
            let times = try c.decode([String].self, forKey: .times)
            switch frequency {
            case "daily": self = .daily(times: times)
            case "weekly": self = .weekly(days: try c.decode([Weekday].self, forKey: .days), times: times)
            default:
                throw DiskVaultError(.usage, "unknown schedule frequency \"\(frequency)\": use \"daily\" or \"weekly\"")
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .daily(let times):
                try c.encode("daily", forKey: .frequency)
                try c.encode(times, forKey: .times)
            case .weekly(let days, let times):
                try c.encode("weekly", forKey: .frequency)
                try c.encode(days, forKey: .days)
                try c.encode(times, forKey: .times)
            }
        }
    }

    /// The most recent scheduled instant at or before `now`, nil only for a policy with no valid times.
    ///
    /// Times are wall-clock times in the policy's zone. A time skipped by a forward clock change (02:30 on the
    /// last Sunday of March in Europe/Berlin) falls on the first instant after the gap (03:00 CEST); a time that
    /// happens twice when clocks go back (02:30 on the last Sunday of October) is one slot, at its first occurrence.
    public func lastScheduledTime(atOrBefore now: Date) -> Date? {
        var best: Date?
        for slot in slots(around: now, days: -8...1) where slot <= now {
            if best.map({ slot > $0 }) ?? true { best = slot }
        }
        return best
    }

    /// The first scheduled instant after `now`.
    public func nextScheduledTime(after now: Date) -> Date? {
        var best: Date?
        for slot in slots(around: now, days: -1...8) where slot > now {
            if best.map({ slot < $0 }) ?? true { best = slot }
        }
        return best
    }

    /// Whether a scheduled backup should run now: the latest slot at or before `now` is later than the last
    /// scheduled backup (its creation time), or there has been none. Each slot runs once however often this is
    /// asked, and slots missed while the machine was off run once, not once each.
    public func isDue(now: Date, lastScheduledBackup: Date?) -> Bool {
        guard let slot = lastScheduledTime(atOrBefore: now) else { return false }
        guard let last = lastScheduledBackup else { return true }
        return slot > last
    }

    /// Every slot on the local days `days` relative to the local day of `now`.
    private func slots(around now: Date, days: ClosedRange<Int>) -> [Date] {
        let tz = zone
        let minutes = schedule.times.compactMap(Schedule.minuteOfDay)
        let weekdays = Set(schedule.days)
        // Local wall-clock time as seconds since 1970 on a clock without zone changes: days are exactly 86,400 s.
        let wallNow = Int64(now.timeIntervalSince1970.rounded(.down)) + Int64(tz.secondsFromGMT(for: now))
        let today = floorDiv(wallNow, 86_400)
        var result: [Date] = []
        for offset in days {
            let day = today + Int64(offset)
            // Day 0, 1970-01-01, was a Thursday (ISO 4).
            guard let weekday = Weekday(rawValue: Int(floorMod(day + 3, 7)) + 1), weekdays.contains(weekday) else { continue }
            for minute in minutes {
                result.append(Self.instant(wallClock: day * 86_400 + Int64(minute) * 60, in: tz))
            }
        }
        return result
    }

    /// The instant a local wall-clock time happens in `tz`: its first occurrence when it happens twice, the end of
    /// the gap when clocks skip it.
    static func instant(wallClock wall: Int64, in tz: TimeZone) -> Date {
        func offset(_ t: Int64) -> Int64 { Int64(tz.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(t)))) }
        // Offsets in force around that time; a wall-clock time t means instant t - offset for an offset that holds then.
        let offsets = Set([wall - 86_400, wall, wall + 86_400].map(offset))
        let valid = offsets.map { wall - $0 }.filter { offset($0) == wall - $0 }
        if let first = valid.min() { return Date(timeIntervalSince1970: TimeInterval(first)) }
        // In a gap: before it the smaller offset holds, after it the larger; find the change to the second.
        var lo = wall - offsets.max()!, hi = wall - offsets.min()!
        let before = offset(lo)
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if offset(mid) == before { lo = mid } else { hi = mid }
        }
        return Date(timeIntervalSince1970: TimeInterval(hi))
    }
}

private func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
private func floorMod(_ a: Int64, _ b: Int64) -> Int64 { a - floorDiv(a, b) * b }

// MARK: - Retention

extension BackupPolicy {
    /// How many points to keep, in Proxmox Backup Server's terms. nil turns a rule off; all nil keeps everything.
    public struct Retention: Codable, Sendable, Equatable, CustomStringConvertible {
        /// The newest N points.
        public var keepLast: Int?
        /// The newest point of each of the N most recent days that have points.
        public var keepDaily: Int?
        /// The newest point of each of the N most recent ISO weeks (Monday to Sunday) that have points.
        public var keepWeekly: Int?
        public var keepMonthly: Int?
        public var keepYearly: Int?

        public init(keepLast: Int? = nil, keepDaily: Int? = nil, keepWeekly: Int? = nil, keepMonthly: Int? = nil, keepYearly: Int? = nil) {
            self.keepLast = keepLast
            self.keepDaily = keepDaily
            self.keepWeekly = keepWeekly
            self.keepMonthly = keepMonthly
            self.keepYearly = keepYearly
        }

        /// No rule set: nothing is ever removed.
        public var keepsEverything: Bool { rules.allSatisfy { $0.count == nil } }

        /// The rules in the order they apply, by their command-line names.
        var rules: [(name: String, count: Int?)] {
            [("keep-last", keepLast), ("keep-daily", keepDaily), ("keep-weekly", keepWeekly), ("keep-monthly", keepMonthly), ("keep-yearly", keepYearly)]
        }

        /// "keep-last 3, keep-daily 30", or "keep all".
        public var description: String {
            let set = rules.compactMap { rule in rule.count.map { "\(rule.name) \($0)" } }
            return set.isEmpty ? "keep all" : set.joined(separator: ", ")
        }

        func validate() throws(DiskVaultError) {
            for rule in rules {
                if let n = rule.count, n < 0 {
                    throw DiskVaultError(.usage, "\(rule.name) must be 0 or more, not \(n)")
                }
            }
        }
    }
}

/// Whether prune keeps a point, and every reason it does (or why not).
public struct RetentionDecision: Codable, Sendable, Equatable {
    public var id: String
    public var keep: Bool
    public var reasons: [String]

    public init(id: String, keep: Bool, reasons: [String]) {
        self.id = id
        self.keep = keep
        self.reasons = reasons
    }
}

extension BackupPolicy {
    /// Decides which points to keep, newest first, the way Proxmox Backup Server prunes.
    ///
    /// Points are sorted newest first (ties by id). The rules keep-last, keep-daily, keep-weekly (ISO weeks),
    /// keep-monthly and keep-yearly apply in that order, each walking the points newest to oldest: a point another
    /// rule already decided on (kept, or passed over as an older point of a period it kept) is skipped, as is a
    /// point whose period holds a point an earlier rule kept ("the next option does not take care of already
    /// covered backups"); otherwise the newest point of each new period is kept until the rule has N periods.
    /// Periods are local to `timeZone`. A point retained until after `now` is kept and, like PBS's protected
    /// snapshots, neither counts toward nor takes part in the rules. If the rules would remove every point, the
    /// newest is kept. With no rule set, everything is kept.
    public static func prune(
        points: [(id: String, created: Date, retainUntil: Date?)], retention: Retention, timeZone: TimeZone, now: Date,
        onDemand: Set<String> = []
    ) -> [RetentionDecision] {
        let order = points.indices.sorted { a, b in
            points[a].created != points[b].created ? points[a].created > points[b].created : points[a].id > points[b].id
        }
        var reasons = [[String]](repeating: [], count: points.count)
        var kept = [Bool](repeating: false, count: points.count)
        let isProtected = points.map { p in p.retainUntil.map { $0 > now } ?? false }
        // On-demand points live by their own retain-until, as the cloud service's do: never thinned by the rules.
        let isOnDemand = points.map { onDemand.contains($0.id) }

        if retention.keepsEverything {
            for i in order {
                kept[i] = true
                reasons[i].append("keep-all (no retention rules)")
            }
        } else {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = timeZone
            calendar.firstWeekday = 2  // ISO 8601 weeks: Monday first, week 1 holds the year's first Thursday.
            calendar.minimumDaysInFirstWeek = 4
            let parts = points.map { calendar.dateComponents([.year, .month, .day, .yearForWeekOfYear, .weekOfYear], from: $0.created) }
            func two(_ v: Int?) -> String { let v = v ?? 0; return v < 10 ? "0\(v)" : "\(v)" }
            func four(_ v: Int?) -> String { let s = String(v ?? 0); return String(repeating: "0", count: max(0, 4 - s.count)) + s }
            let periods: [(Int) -> String] = [
                { "#\($0)" },  // keep-last: every point is its own period.
                { "\(four(parts[$0].year))-\(two(parts[$0].month))-\(two(parts[$0].day))" },
                { "\(four(parts[$0].yearForWeekOfYear))-W\(two(parts[$0].weekOfYear))" },
                { "\(four(parts[$0].year))-\(two(parts[$0].month))" },
                { four(parts[$0].year) },
            ]
            // Points a rule has decided on: kept, or passed over within a period it kept.
            var decided = Set<Int>()
            for (rule, period) in zip(retention.rules, periods) {
                guard let count = rule.count else { continue }
                let covered = Set(points.indices.filter { kept[$0] }.map(period))
                var selected = Set<String>()
                for i in order where !decided.contains(i) && !isProtected[i] && !isOnDemand[i] {
                    let key = period(i)
                    if covered.contains(key) { continue }
                    if selected.contains(key) {
                        decided.insert(i)
                        continue
                    }
                    if selected.count >= count { break }
                    selected.insert(key)
                    decided.insert(i)
                    kept[i] = true
                    reasons[i].append("\(rule.name) \(rule.name == "keep-last" ? String(selected.count) : key)")
                }
            }
        }
        for i in order where isProtected[i] {
            kept[i] = true
            reasons[i].append("retain-until \(retainLabel(points[i].retainUntil!))")
        }
        if let newest = order.first, !kept.contains(true) {
            kept[newest] = true
            reasons[newest].append("newest point: kept because the retention rules would remove every point")
        }
        return order.map { i in
            let why = isOnDemand[i] ? "on-demand point past its retain-until \(points[i].retainUntil.map(retainLabel) ?? "-")" : "not selected by any rule"
            return RetentionDecision(id: points[i].id, keep: kept[i], reasons: kept[i] ? reasons[i] : [why])
        }
    }

    /// `prune` with this policy's retention and time zone.
    public func prune(points: [(id: String, created: Date, retainUntil: Date?)], now: Date, onDemand: Set<String> = []) -> [RetentionDecision] {
        Self.prune(points: points, retention: retention, timeZone: zone, now: now, onDemand: onDemand)
    }

    /// How long an on-demand point given no retain-until is kept (the cloud service's default).
    public static let onDemandRetention: TimeInterval = 30 * 86400

    /// `prune` over recovery points from the vault; `.corrupt` when a manifest's times cannot be read.
    public func prune(_ points: [RecoveryPoint], now: Date) throws(DiskVaultError) -> [RetentionDecision] {
        var input: [(id: String, created: Date, retainUntil: Date?)] = []
        var onDemand = Set<String>()
        for point in points {
            guard let created = Timestamp.parse(point.manifest.created) else {
                throw DiskVaultError(.corrupt, "recovery point \(point.id) has an unreadable creation time \"\(point.manifest.created)\"")
            }
            var until: Date?
            if let text = point.manifest.retainUntil {
                guard let d = Timestamp.parse(text) else {
                    throw DiskVaultError(.corrupt, "recovery point \(point.id) has an unreadable retain-until time \"\(text)\"")
                }
                until = d
            }
            if point.manifest.trigger == .onDemand { onDemand.insert(point.id) }
            input.append((point.id, created, until))
        }
        // `points` come in commit order. A point dated after a later-committed one, or after now, was dated by a
        // wrong clock: it counts as just older than what came after it, so it never outranks newer points.
        var limit = now
        for i in input.indices.reversed() {
            if input[i].created > limit { input[i].created = limit }
            limit = input[i].created.addingTimeInterval(-0.001)
        }
        // An on-demand point given no retain-until is kept for 30 days from when it was made (as corrected).
        for i in input.indices where onDemand.contains(input[i].id) && input[i].retainUntil == nil {
            input[i].retainUntil = input[i].created.addingTimeInterval(Self.onDemandRetention)
        }
        return prune(points: input, now: now, onDemand: onDemand)
    }

    /// A date given as a bare day (kept to the end of that UTC day) reads as the day; any other time in full.
    static func retainLabel(_ date: Date) -> String {
        if Timestamp.format(date) == RecoveryPoint.retainForever { return "forever" }
        let seconds = date.timeIntervalSince1970
        if seconds.rounded(.down) == seconds, floorMod(Int64(seconds) + 1, 86_400) == 0 {
            return String(Timestamp.format(date).prefix(10))
        }
        return Timestamp.format(date)
    }
}
