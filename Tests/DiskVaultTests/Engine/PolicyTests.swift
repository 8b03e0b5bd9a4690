import DiskVault
import Foundation
import XCTest

final class PolicyTests: XCTestCase {
    typealias Retention = BackupPolicy.Retention

    /// "2026-11-24T10:00:00Z" (or with milliseconds) as a Date.
    private func at(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> Date {
        guard let d = Timestamp.parse(text) else {
            XCTFail("bad test time \(text)", file: file, line: line)
            return Date(timeIntervalSince1970: 0)
        }
        return d
    }

    private func zone(_ name: String) -> TimeZone { TimeZone(identifier: name)! }

    /// Points named by their creation time unless a name is given.
    private func points(_ spec: [(String, String?)]) -> [(id: String, created: Date, retainUntil: Date?)] {
        spec.map { (created, until) in (id: created, created: at(created), retainUntil: until.map { at($0) }) }
    }

    private func points(_ created: [String]) -> [(id: String, created: Date, retainUntil: Date?)] {
        points(created.map { ($0, nil) })
    }

    private func prune(
        _ pts: [(id: String, created: Date, retainUntil: Date?)], _ retention: Retention, zone tz: String = "UTC",
        now: String = "2030-01-01T00:00:00Z"
    ) -> [RetentionDecision] {
        BackupPolicy.prune(points: pts, retention: retention, timeZone: zone(tz), now: at(now))
    }

    private func kept(_ decisions: [RetentionDecision]) -> [String] { decisions.filter(\.keep).map(\.id) }
    private func removed(_ decisions: [RetentionDecision]) -> [String] { decisions.filter { !$0.keep }.map(\.id) }
    private func reasons(_ decisions: [RetentionDecision]) -> [String: [String]] {
        Dictionary(uniqueKeysWithValues: decisions.map { ($0.id, $0.reasons) })
    }

    // MARK: - Retention

    func testKeepLast() {
        let pts = points([
            "2026-11-20T02:00:00Z", "2026-11-24T02:00:00Z", "2026-11-22T02:00:00Z", "2026-11-21T02:00:00Z", "2026-11-23T02:00:00Z",
        ])
        let d = prune(pts, Retention(keepLast: 3))
        XCTAssertEqual(d.map(\.id), ["2026-11-24T02:00:00Z", "2026-11-23T02:00:00Z", "2026-11-22T02:00:00Z", "2026-11-21T02:00:00Z", "2026-11-20T02:00:00Z"], "newest first")
        XCTAssertEqual(kept(d), ["2026-11-24T02:00:00Z", "2026-11-23T02:00:00Z", "2026-11-22T02:00:00Z"])
        XCTAssertEqual(d.map(\.reasons), [["keep-last 1"], ["keep-last 2"], ["keep-last 3"], ["not selected by any rule"], ["not selected by any rule"]])
        // More than there are: everything.
        XCTAssertEqual(kept(prune(pts, Retention(keepLast: 10))).count, 5)
    }

    func testKeepDailyKeepsNewestOfEachDayWithPoints() {
        let pts = points([
            "2026-11-24T20:00:00Z", "2026-11-24T08:00:00Z",
            "2026-11-23T23:59:59Z", "2026-11-23T00:00:00Z",
            "2026-11-22T12:00:00Z",
            // No point on the 21st: days without points do not count.
            "2026-11-20T12:00:00Z", "2026-11-20T11:00:00Z",
        ])
        let d = prune(pts, Retention(keepDaily: 3))
        XCTAssertEqual(kept(d), ["2026-11-24T20:00:00Z", "2026-11-23T23:59:59Z", "2026-11-22T12:00:00Z"])
        let r = reasons(d)
        XCTAssertEqual(r["2026-11-24T20:00:00Z"], ["keep-daily 2026-11-24"])
        XCTAssertEqual(r["2026-11-23T23:59:59Z"], ["keep-daily 2026-11-23"])
        XCTAssertEqual(r["2026-11-22T12:00:00Z"], ["keep-daily 2026-11-22"])
        XCTAssertEqual(r["2026-11-24T08:00:00Z"], ["not selected by any rule"])

        let four = prune(pts, Retention(keepDaily: 4))
        XCTAssertEqual(kept(four), ["2026-11-24T20:00:00Z", "2026-11-23T23:59:59Z", "2026-11-22T12:00:00Z", "2026-11-20T12:00:00Z"])
        XCTAssertEqual(reasons(four)["2026-11-20T12:00:00Z"], ["keep-daily 2026-11-20"])
    }

    func testKeepWeeklyUsesISOWeeksSundayToMonday() {
        // 2026-11-29 is a Sunday (2026-W48), 2026-11-30 a Monday (2026-W49).
        let pts = points([
            "2026-11-30T10:00:00Z", "2026-11-29T22:00:00Z", "2026-11-29T08:00:00Z", "2026-11-28T10:00:00Z", "2026-11-23T00:00:00Z",
            "2026-11-22T23:00:00Z",
        ])
        let d = prune(pts, Retention(keepWeekly: 3))
        XCTAssertEqual(kept(d), ["2026-11-30T10:00:00Z", "2026-11-29T22:00:00Z", "2026-11-22T23:00:00Z"])
        let r = reasons(d)
        XCTAssertEqual(r["2026-11-30T10:00:00Z"], ["keep-weekly 2026-W49"])
        XCTAssertEqual(r["2026-11-29T22:00:00Z"], ["keep-weekly 2026-W48"])
        XCTAssertEqual(r["2026-11-22T23:00:00Z"], ["keep-weekly 2026-W47"])
    }

    func testKeepWeeklyAtYearEnd() {
        // 2020 has 53 ISO weeks: 2020-12-28 (Mon) to 2021-01-03 (Sun) is 2020-W53; 2021-01-04 starts 2021-W01.
        let pts = points([
            "2021-01-04T10:00:00Z", "2021-01-03T10:00:00Z", "2021-01-01T10:00:00Z", "2020-12-28T10:00:00Z", "2020-12-27T10:00:00Z",
        ])
        let d = prune(pts, Retention(keepWeekly: 3))
        XCTAssertEqual(kept(d), ["2021-01-04T10:00:00Z", "2021-01-03T10:00:00Z", "2020-12-27T10:00:00Z"])
        let r = reasons(d)
        XCTAssertEqual(r["2021-01-04T10:00:00Z"], ["keep-weekly 2021-W01"])
        XCTAssertEqual(r["2021-01-03T10:00:00Z"], ["keep-weekly 2020-W53"])
        XCTAssertEqual(r["2020-12-27T10:00:00Z"], ["keep-weekly 2020-W52"])

        // 2024-12-30 (Mon) already belongs to 2025-W01.
        let later = prune(points(["2025-01-02T10:00:00Z", "2024-12-30T10:00:00Z", "2024-12-29T10:00:00Z"]), Retention(keepWeekly: 5))
        XCTAssertEqual(kept(later), ["2025-01-02T10:00:00Z", "2024-12-29T10:00:00Z"])
        XCTAssertEqual(reasons(later)["2025-01-02T10:00:00Z"], ["keep-weekly 2025-W01"])
        XCTAssertEqual(reasons(later)["2024-12-29T10:00:00Z"], ["keep-weekly 2024-W52"])
    }

    func testKeepMonthlyAndYearly() {
        let pts = points([
            "2026-03-15T10:00:00Z", "2026-03-01T10:00:00Z", "2026-02-28T10:00:00Z", "2026-01-10T10:00:00Z", "2025-12-31T10:00:00Z",
            "2025-06-01T10:00:00Z", "2024-07-01T10:00:00Z", "2023-01-01T10:00:00Z",
        ])
        let monthly = prune(pts, Retention(keepMonthly: 3))
        XCTAssertEqual(kept(monthly), ["2026-03-15T10:00:00Z", "2026-02-28T10:00:00Z", "2026-01-10T10:00:00Z"])
        XCTAssertEqual(reasons(monthly)["2026-02-28T10:00:00Z"], ["keep-monthly 2026-02"])

        let yearly = prune(pts, Retention(keepYearly: 3))
        XCTAssertEqual(kept(yearly), ["2026-03-15T10:00:00Z", "2025-12-31T10:00:00Z", "2024-07-01T10:00:00Z"])
        XCTAssertEqual(reasons(yearly)["2025-12-31T10:00:00Z"], ["keep-yearly 2025"])
        XCTAssertEqual(reasons(yearly)["2024-07-01T10:00:00Z"], ["keep-yearly 2024"])
        XCTAssertEqual(removed(yearly).count, 5)
    }

    /// Rules apply in order; a later rule passes over periods an earlier one already covers and counts only new ones.
    func testCombinedRulesFollowProxmoxOrder() {
        let pts = points([
            "2026-11-24T20:00:00Z",  // Tue, W48
            "2026-11-24T08:00:00Z",
            "2026-11-23T12:00:00Z",  // Mon, W48
            "2026-11-22T12:00:00Z",  // Sun, W47
            "2026-11-21T12:00:00Z",  // Sat, W47
            "2026-11-15T12:00:00Z",  // W46
            "2026-11-02T12:00:00Z",  // W45
            "2026-10-31T12:00:00Z",  // W44, October
            "2026-10-05T12:00:00Z",
            "2026-09-30T12:00:00Z",
        ])
        let d = prune(pts, Retention(keepLast: 2, keepDaily: 2, keepWeekly: 2, keepMonthly: 2))
        let r = reasons(d)
        XCTAssertEqual(r["2026-11-24T20:00:00Z"], ["keep-last 1"])
        XCTAssertEqual(r["2026-11-24T08:00:00Z"], ["keep-last 2"])
        // The 24th is covered by keep-last, so keep-daily's two days are the 23rd and 22nd.
        XCTAssertEqual(r["2026-11-23T12:00:00Z"], ["keep-daily 2026-11-23"])
        XCTAssertEqual(r["2026-11-22T12:00:00Z"], ["keep-daily 2026-11-22"])
        // W48 and W47 are covered, so keep-weekly takes W46 and W45.
        XCTAssertEqual(r["2026-11-21T12:00:00Z"], ["not selected by any rule"])
        XCTAssertEqual(r["2026-11-15T12:00:00Z"], ["keep-weekly 2026-W46"])
        XCTAssertEqual(r["2026-11-02T12:00:00Z"], ["keep-weekly 2026-W45"])
        // November is covered, so keep-monthly takes October (its newest point) and September.
        XCTAssertEqual(r["2026-10-31T12:00:00Z"], ["keep-monthly 2026-10"])
        XCTAssertEqual(r["2026-10-05T12:00:00Z"], ["not selected by any rule"])
        XCTAssertEqual(r["2026-09-30T12:00:00Z"], ["keep-monthly 2026-09"])
        XCTAssertEqual(removed(d), ["2026-11-21T12:00:00Z", "2026-10-05T12:00:00Z"])
    }

    /// As in PBS, a point an earlier rule passed over (an older point of a week it kept) is not picked up by a later
    /// rule, even when that week straddles a month the later rule has not covered.
    func testPointPassedOverByEarlierRuleStaysPassedOver() {
        // 2026-03-30 (Mon) to 2026-04-05 (Sun) is 2026-W14.
        let pts = points(["2026-04-02T10:00:00Z", "2026-03-31T10:00:00Z", "2026-03-20T10:00:00Z"])
        let d = prune(pts, Retention(keepWeekly: 1, keepMonthly: 2))
        XCTAssertEqual(kept(d), ["2026-04-02T10:00:00Z", "2026-03-20T10:00:00Z"])
        XCTAssertEqual(reasons(d)["2026-04-02T10:00:00Z"], ["keep-weekly 2026-W14"])
        XCTAssertEqual(reasons(d)["2026-03-20T10:00:00Z"], ["keep-monthly 2026-03"])
    }

    func testDaysAreLocalToThePolicyTimeZone() {
        // 18:30 and 19:30 on the 24th in New York (UTC-5), but two different UTC days.
        let pts = points(["2026-11-24T23:30:00Z", "2026-11-25T00:30:00Z"])
        let utc = prune(pts, Retention(keepDaily: 5), zone: "UTC")
        XCTAssertEqual(kept(utc), ["2026-11-25T00:30:00Z", "2026-11-24T23:30:00Z"])
        XCTAssertEqual(reasons(utc)["2026-11-25T00:30:00Z"], ["keep-daily 2026-11-25"])

        let newYork = prune(pts, Retention(keepDaily: 5), zone: "America/New_York")
        XCTAssertEqual(kept(newYork), ["2026-11-25T00:30:00Z"])
        XCTAssertEqual(reasons(newYork)["2026-11-25T00:30:00Z"], ["keep-daily 2026-11-24"])
        XCTAssertEqual(removed(newYork), ["2026-11-24T23:30:00Z"])

        // The policy's own zone is used by the instance method.
        let policy = try! BackupPolicy(name: "ny", schedule: .daily(times: ["02:00"]), timeZone: "America/New_York", retention: Retention(keepDaily: 5))
        XCTAssertEqual(policy.prune(points: pts, now: at("2030-01-01T00:00:00Z")), newYork)
    }

    func testRetainUntilInTheFutureKeepsAndDoesNotCount() {
        let pts = points([
            ("2026-11-24T12:00:00Z", "2027-01-01"),  // on-demand, retained to the end of 2027-01-01 UTC
            ("2026-11-24T02:00:00Z", nil),
            ("2026-11-20T09:00:00Z", "2026-11-21"),  // on-demand, retention passed
            ("2026-11-19T02:00:00Z", nil),
            ("2026-11-18T09:00:00Z", "2026-12-01T10:00:00Z"),
        ])
        let d = prune(pts, Retention(keepLast: 1), now: "2026-11-25T00:00:00Z")
        let r = reasons(d)
        XCTAssertEqual(kept(d), ["2026-11-24T12:00:00Z", "2026-11-24T02:00:00Z", "2026-11-18T09:00:00Z"])
        XCTAssertEqual(r["2026-11-24T12:00:00Z"], ["retain-until 2027-01-01"])
        // The retained point does not use up keep-last's one place.
        XCTAssertEqual(r["2026-11-24T02:00:00Z"], ["keep-last 1"])
        XCTAssertEqual(r["2026-11-20T09:00:00Z"], ["not selected by any rule"])
        XCTAssertEqual(r["2026-11-19T02:00:00Z"], ["not selected by any rule"])
        XCTAssertEqual(r["2026-11-18T09:00:00Z"], ["retain-until 2026-12-01T10:00:00.000Z"])

        // Once the time has passed, the on-demand point is an ordinary point.
        let later = prune(pts, Retention(keepLast: 1), now: "2027-06-01T00:00:00Z")
        XCTAssertEqual(kept(later), ["2026-11-24T12:00:00Z"])
        XCTAssertEqual(reasons(later)["2026-11-24T12:00:00Z"], ["keep-last 1"])
    }

    func testNoRulesKeepsEverything() {
        let pts = points([("2026-11-24T02:00:00Z", nil), ("2020-01-01T02:00:00Z", nil), ("2026-11-23T02:00:00Z", "2027-01-01")])
        let d = prune(pts, Retention(), now: "2026-11-25T00:00:00Z")
        XCTAssertEqual(removed(d), [])
        XCTAssertEqual(reasons(d)["2020-01-01T02:00:00Z"], ["keep-all (no retention rules)"])
        XCTAssertEqual(reasons(d)["2026-11-23T02:00:00Z"], ["keep-all (no retention rules)", "retain-until 2027-01-01"])
        XCTAssertTrue(Retention().keepsEverything)
        XCTAssertEqual(Retention().description, "keep all")
        XCTAssertEqual(Retention(keepLast: 2, keepMonthly: 6).description, "keep-last 2, keep-monthly 6")
    }

    func testNewestIsKeptWhenRulesWouldRemoveEverything() {
        let pts = points(["2026-11-22T02:00:00Z", "2026-11-24T02:00:00Z", "2026-11-23T02:00:00Z"])
        let d = prune(pts, Retention(keepLast: 0, keepDaily: 0))
        XCTAssertEqual(kept(d), ["2026-11-24T02:00:00Z"])
        XCTAssertEqual(d[0].reasons, ["newest point: kept because the retention rules would remove every point"])
        XCTAssertEqual(removed(d), ["2026-11-23T02:00:00Z", "2026-11-22T02:00:00Z"])
        XCTAssertEqual(prune([], Retention(keepLast: 1)), [])
    }

    func testEqualTimesOrderByID() {
        let t = at("2026-11-24T02:00:00Z")
        let pts: [(id: String, created: Date, retainUntil: Date?)] = [(id: "a", created: t, retainUntil: nil), (id: "b", created: t, retainUntil: nil)]
        let d = BackupPolicy.prune(points: pts, retention: Retention(keepLast: 1), timeZone: zone("UTC"), now: t)
        XCTAssertEqual(d.map(\.id), ["b", "a"])
        XCTAssertEqual(kept(d), ["b"])
    }

    func testDecisionJSON() throws {
        let decision = RetentionDecision(id: "x", keep: true, reasons: ["keep-last 1"])
        let back = try JSONDecoder().decode(RetentionDecision.self, from: Data(try JSON.encode(decision)))
        XCTAssertEqual(back, decision)
    }

    // MARK: - Policy model

    func testDefaultPolicy() {
        let p = BackupPolicy.default
        XCTAssertEqual(p.name, "Default")
        XCTAssertEqual(p.schedule, .daily(times: ["02:00"]))
        XCTAssertEqual(p.timeZone, "UTC")
        XCTAssertEqual(p.retention, Retention(keepDaily: 30))
    }

    func testJSONRoundTrip() throws {
        let p = try BackupPolicy.parse(
            name: "weekly-berlin", schedule: "weekly sun,wed 03:30,15:00", timeZone: "Europe/Berlin", keepLast: 2, keepWeekly: 8, keepYearly: 3)
        let bytes = try p.encoded()
        let text = String(decoding: bytes, as: UTF8.self)
        XCTAssertTrue(text.contains("\"frequency\" : \"weekly\""), text)
        XCTAssertTrue(text.contains("\"wednesday\""), text)
        XCTAssertTrue(text.contains("\"keepWeekly\" : 8"), text)
        XCTAssertFalse(text.contains("keepDaily"), text)
        XCTAssertEqual(try BackupPolicy.decode(bytes), p)
        XCTAssertEqual(try BackupPolicy.decode(try BackupPolicy.default.encoded()), BackupPolicy.default)

        // Hand-written: numbers and abbreviations for days, unsorted times, no zone.
        let hand = """
            {"name": "h", "schedule": {"frequency": "weekly", "days": [7, "Wed", "sun"], "times": ["15:00", "3:30"]},
             "retention": {"keepDaily": 7}}
            """
        let h = try BackupPolicy.decode(Array(hand.utf8))
        XCTAssertEqual(h.schedule, .weekly(days: [.wednesday, .sunday], times: ["03:30", "15:00"]))
        XCTAssertEqual(h.timeZone, "UTC")
        XCTAssertEqual(h.retention, Retention(keepDaily: 7))
    }

    func testDecodeRejectsBadPolicies() {
        func check(_ json: String, _ code: DiskVaultError.Code, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try BackupPolicy.decode(Array(json.utf8), source: "policies/x.json"), line: line) { error in
                let e = error as? DiskVaultError
                XCTAssertEqual(e?.code, code, "\(error)", line: line)
                XCTAssertTrue(e?.message.contains(fragment) ?? false, "\(error)", line: line)
                XCTAssertEqual(e?.path, "policies/x.json", line: line)
            }
        }
        check("not json", .corrupt, "damaged")
        check(#"{"name": "x"}"#, .corrupt, "missing field \"schedule\"")
        check(#"{"name": "x", "schedule": {"frequency": "daily", "times": ["25:00"]}}"#, .usage, "invalid time \"25:00\"")
        check(#"{"name": "x", "schedule": {"frequency": "hourly", "times": ["02:00"]}}"#, .usage, "unknown schedule frequency")
        check(#"{"name": "x", "schedule": {"frequency": "weekly", "days": ["someday"], "times": ["02:00"]}}"#, .usage, "unknown day")
        check(#"{"name": "x", "timeZone": "Mars/Olympus", "schedule": {"frequency": "daily", "times": ["02:00"]}}"#, .usage, "unknown time zone")
        check(#"{"version": 9, "name": "x", "schedule": {"frequency": "daily", "times": ["02:00"]}}"#, .unsupported, "version 9")
    }

    func testParse() throws {
        XCTAssertEqual(try BackupPolicy.Schedule.parse("daily 02:00,14:00"), .daily(times: ["02:00", "14:00"]))
        XCTAssertEqual(try BackupPolicy.Schedule.parse("weekly sun,wed 03:30"), .weekly(days: [.wednesday, .sunday], times: ["03:30"]))
        XCTAssertEqual(try BackupPolicy.Schedule.parse("  Weekly SUN, Wednesday  3:30, 15:00 "), .weekly(days: [.wednesday, .sunday], times: ["03:30", "15:00"]))
        XCTAssertEqual(try BackupPolicy.Schedule.parse("weekly 7,3,3 03:30"), .weekly(days: [.wednesday, .sunday], times: ["03:30"]))
        XCTAssertEqual(try BackupPolicy.Schedule.parse("daily 14:00,2:00,02:00"), .daily(times: ["02:00", "14:00"]))
        XCTAssertEqual(try BackupPolicy.Schedule.parse("weekly tues,thurs 00:00").days, [.tuesday, .thursday])
        // description reads back.
        for text in ["daily 02:00,14:00", "weekly wed,sun 03:30", "weekly mon,tue,wed,thu,fri,sat,sun 23:59"] {
            XCTAssertEqual(try BackupPolicy.Schedule.parse(text).description, text)
        }
        let p = try BackupPolicy.parse(name: "p", schedule: "daily 02:00", timeZone: "Europe/Berlin", keepLast: 0, keepDaily: 7, keepMonthly: 12)
        XCTAssertEqual(p.retention, Retention(keepLast: 0, keepDaily: 7, keepMonthly: 12))
        XCTAssertEqual(p.timeZone, "Europe/Berlin")
    }

    func testParseAndValidationErrors() {
        func check(_ fragment: String, line: UInt = #line, _ body: () throws -> Any) {
            XCTAssertThrowsError(try body(), line: line) { error in
                let e = error as? DiskVaultError
                XCTAssertEqual(e?.code, .usage, "\(error)", line: line)
                XCTAssertTrue(e?.message.contains(fragment) ?? false, "\"\(e?.message ?? "\(error)")\" lacks \"\(fragment)\"", line: line)
            }
        }
        func schedule(_ text: String) throws -> Any { try BackupPolicy.parse(name: "p", schedule: text) }
        check("empty schedule") { try schedule("") }
        check("empty schedule") { try schedule("   ") }
        check("unknown schedule \"hourly 02:00\"") { try schedule("hourly 02:00") }
        check("has no times") { try schedule("daily") }
        check("cannot read schedule") { try schedule("daily 02:00 03:00") }
        check("needs days and times") { try schedule("weekly sun") }
        check("invalid time \"24:00\"") { try schedule("daily 24:00") }
        check("invalid time \"02:60\"") { try schedule("daily 02:60") }
        check("invalid time \"2:0\"") { try schedule("daily 2:0") }
        check("invalid time \"0200\"") { try schedule("daily 0200") }
        check("invalid time \"-1:00\"") { try schedule("daily -1:00") }
        check("invalid time \"\"") { try schedule("daily 02:00,") }
        check("unknown day \"funday\"") { try schedule("weekly funday 02:00") }
        check("unknown day \"su\"") { try schedule("weekly su 02:00") }
        check("1 (Monday) to 7 (Sunday)") { try schedule("weekly 0 02:00") }
        check("1 (Monday) to 7 (Sunday)") { try schedule("weekly 8 02:00") }
        check("unknown time zone \"Mars/Olympus\"") { try BackupPolicy.parse(name: "p", schedule: "daily 02:00", timeZone: "Mars/Olympus") }
        check("keep-daily must be 0 or more, not -1") { try BackupPolicy.parse(name: "p", schedule: "daily 02:00", keepDaily: -1) }
        check("keep-last must be 0 or more") { try BackupPolicy.parse(name: "p", schedule: "daily 02:00", keepLast: -3) }
        check("keep-yearly must be 0 or more") { try BackupPolicy(name: "p", schedule: .daily(times: ["02:00"]), retention: Retention(keepYearly: -1)) }
        check("schedule has no times") { try BackupPolicy(name: "p", schedule: .daily(times: [])) }
        check("weekly schedule has no days") { try BackupPolicy(name: "p", schedule: .weekly(days: [], times: ["02:00"])) }
        for bad in ["", "../x", ".hidden", "a/b", "with space", String(repeating: "n", count: 129)] {
            check("invalid policy name") { try BackupPolicy(name: bad, schedule: .daily(times: ["02:00"])) }
        }
    }

    // MARK: - Schedule

    func testDailyTwoTimes() throws {
        let p = try BackupPolicy.parse(name: "p", schedule: "daily 02:00,14:00")
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-11-24T01:59:59Z")), at("2026-11-23T14:00:00Z"))
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-11-24T02:00:00Z")), at("2026-11-24T02:00:00Z"))
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-11-24T13:59:00Z")), at("2026-11-24T02:00:00Z"))
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-11-24T14:00:01Z")), at("2026-11-24T14:00:00Z"))
        XCTAssertEqual(p.nextScheduledTime(after: at("2026-11-24T14:00:00Z")), at("2026-11-25T02:00:00Z"))

        XCTAssertTrue(p.isDue(now: at("2026-11-24T14:00:00Z"), lastScheduledBackup: at("2026-11-24T02:00:20Z")))
        XCTAssertFalse(p.isDue(now: at("2026-11-24T13:59:59Z"), lastScheduledBackup: at("2026-11-24T02:00:20Z")))
        XCTAssertFalse(p.isDue(now: at("2026-11-24T14:05:00Z"), lastScheduledBackup: at("2026-11-24T14:00:00Z")), "a backup at the slot's instant is that slot's")
        XCTAssertTrue(p.isDue(now: at("2026-11-24T14:05:00Z"), lastScheduledBackup: nil), "never backed up")

        // cron every five minutes for a day runs each slot once.
        let runs = simulateCron(p, from: at("2026-11-24T00:00:00Z"), to: at("2026-11-25T00:00:00Z"), last: at("2026-11-23T14:00:30Z"))
        XCTAssertEqual(runs, [at("2026-11-24T02:00:00Z"), at("2026-11-24T14:00:00Z")])
    }

    func testMissedSlotsRunOnce() throws {
        let p = try BackupPolicy.parse(name: "p", schedule: "daily 02:00")
        let last = at("2026-11-20T02:01:00Z")
        // Off from the 20th to the 24th: four slots missed, one run on return.
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-11-24T09:00:00Z")), at("2026-11-24T02:00:00Z"))
        let runs = simulateCron(p, from: at("2026-11-24T09:00:00Z"), to: at("2026-11-25T01:59:00Z"), last: last)
        XCTAssertEqual(runs, [at("2026-11-24T09:00:00Z")])
        XCTAssertFalse(p.isDue(now: at("2026-11-24T09:05:00Z"), lastScheduledBackup: at("2026-11-24T09:00:30Z")))
        XCTAssertTrue(p.isDue(now: at("2026-11-25T02:00:00Z"), lastScheduledBackup: at("2026-11-24T09:00:30Z")))
    }

    func testWeeklyDays() throws {
        // 2026-11-24 is a Tuesday.
        let p = try BackupPolicy.parse(name: "p", schedule: "weekly sun,wed 03:30")
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-11-24T12:00:00Z")), at("2026-11-22T03:30:00Z"))
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-11-25T03:29:59Z")), at("2026-11-22T03:30:00Z"))
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-11-25T03:30:00Z")), at("2026-11-25T03:30:00Z"))
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-11-28T23:59:59Z")), at("2026-11-25T03:30:00Z"))
        XCTAssertEqual(p.nextScheduledTime(after: at("2026-11-25T03:30:00Z")), at("2026-11-29T03:30:00Z"))
        let runs = simulateCron(p, from: at("2026-11-23T00:00:00Z"), to: at("2026-12-07T00:00:00Z"), last: at("2026-11-22T03:31:00Z"))
        XCTAssertEqual(runs, [at("2026-11-25T03:30:00Z"), at("2026-11-29T03:30:00Z"), at("2026-12-02T03:30:00Z"), at("2026-12-06T03:30:00Z")])

        // One day a week: the slot six days back is still found.
        let monday = try BackupPolicy.parse(name: "p", schedule: "weekly 1 00:30", timeZone: "Europe/Berlin")
        // Monday 00:30 in Berlin (CET, UTC+1) is Sunday 23:30 UTC.
        XCTAssertEqual(monday.lastScheduledTime(atOrBefore: at("2026-11-22T23:30:00Z")), at("2026-11-22T23:30:00Z"))
        XCTAssertEqual(monday.lastScheduledTime(atOrBefore: at("2026-11-29T23:29:59Z")), at("2026-11-22T23:30:00Z"))
    }

    func testTimesAreWallClockInTheZone() throws {
        let p = try BackupPolicy.parse(name: "p", schedule: "daily 02:00", timeZone: "America/New_York")
        // 02:00 EST is 07:00 UTC in winter, 02:00 EDT is 06:00 UTC in summer.
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-11-24T12:00:00Z")), at("2026-11-24T07:00:00Z"))
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-07-01T12:00:00Z")), at("2026-07-01T06:00:00Z"))
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-07-01T05:59:00Z")), at("2026-06-30T06:00:00Z"))
    }

    /// Europe/Berlin springs forward on the last Sunday of March (2026-03-29): 02:00 CET becomes 03:00 CEST.
    func testSpringForwardInBerlin() throws {
        let p = try BackupPolicy.parse(name: "p", schedule: "daily 02:30", timeZone: "Europe/Berlin")
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-03-29T00:59:59Z")), at("2026-03-28T01:30:00Z"), "02:30 CET")
        // 02:30 does not exist that day: the slot is the first instant after the gap, 03:00 CEST.
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-03-29T01:00:00Z")), at("2026-03-29T01:00:00Z"))
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-03-30T00:30:00Z")), at("2026-03-30T00:30:00Z"), "02:30 CEST")
        let runs = simulateCron(p, from: at("2026-03-27T12:00:00Z"), to: at("2026-03-31T12:00:00Z"), last: at("2026-03-27T01:31:00Z"))
        XCTAssertEqual(runs, [at("2026-03-28T01:30:00Z"), at("2026-03-29T01:00:00Z"), at("2026-03-30T00:30:00Z"), at("2026-03-31T00:30:00Z")])

        // Two times in and after the gap fall on one instant that day and run once.
        let two = try BackupPolicy.parse(name: "p", schedule: "daily 02:00,02:45,03:00", timeZone: "Europe/Berlin")
        let twoRuns = simulateCron(two, from: at("2026-03-28T12:00:00Z"), to: at("2026-03-29T12:00:00Z"), last: at("2026-03-28T02:00:30Z"))
        XCTAssertEqual(twoRuns, [at("2026-03-29T01:00:00Z")])
        // A time outside the gap is unaffected.
        let noon = try BackupPolicy.parse(name: "p", schedule: "daily 12:00", timeZone: "Europe/Berlin")
        XCTAssertEqual(noon.lastScheduledTime(atOrBefore: at("2026-03-29T11:00:00Z")), at("2026-03-29T10:00:00Z"))
    }

    /// Europe/Berlin falls back on the last Sunday of October (2026-10-25): 03:00 CEST becomes 02:00 CET, so
    /// 02:00 to 02:59 happen twice.
    func testFallBackInBerlin() throws {
        let p = try BackupPolicy.parse(name: "p", schedule: "daily 02:30", timeZone: "Europe/Berlin")
        // The first 02:30 (CEST) is 00:30 UTC; the second (CET) 01:30 UTC is not another slot.
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-10-25T00:30:00Z")), at("2026-10-25T00:30:00Z"))
        XCTAssertEqual(p.lastScheduledTime(atOrBefore: at("2026-10-25T01:45:00Z")), at("2026-10-25T00:30:00Z"))
        XCTAssertFalse(p.isDue(now: at("2026-10-25T01:30:00Z"), lastScheduledBackup: at("2026-10-25T00:30:10Z")))
        let runs = simulateCron(p, from: at("2026-10-24T12:00:00Z"), to: at("2026-10-26T12:00:00Z"), last: at("2026-10-24T00:31:00Z"))
        XCTAssertEqual(runs, [at("2026-10-25T00:30:00Z"), at("2026-10-26T01:30:00Z")])
    }

    /// On-demand points are never thinned by keep rules: today's four on-demand points all stay under
    /// keep-daily 1 while their retain-until (30 days by default, given by the caller here) holds, while scheduled
    /// points of the same day are thinned; once it passes they go, with the reason named.
    func testOnDemandPointsLiveByTheirRetainUntilNotTheRules() {
        let day = ["2026-11-10T08:00:00Z", "2026-11-10T09:00:00Z", "2026-11-10T10:00:00Z", "2026-11-10T11:00:00Z"]
        let onDemand = day.map { (id: "od-\($0)", created: at($0), retainUntil: Optional(at($0).addingTimeInterval(BackupPolicy.onDemandRetention))) }
        let scheduled = [(id: "s1", created: at("2026-11-10T02:00:00Z"), retainUntil: Date?.none),
                         (id: "s2", created: at("2026-11-10T14:00:00Z"), retainUntil: Date?.none)]
        let ids = Set(onDemand.map(\.id))
        let soon = BackupPolicy.prune(points: onDemand + scheduled, retention: Retention(keepDaily: 1), timeZone: zone("UTC"),
                                      now: at("2026-11-11T00:00:00Z"), onDemand: ids)
        XCTAssertEqual(Set(kept(soon)), ids.union(["s2"]))
        XCTAssertEqual(removed(soon), ["s1"])
        let later = BackupPolicy.prune(points: onDemand + scheduled, retention: Retention(keepDaily: 1), timeZone: zone("UTC"),
                                       now: at("2026-12-11T00:00:00Z"), onDemand: ids)
        XCTAssertEqual(kept(later), ["s2"])
        XCTAssertTrue(reasons(later)["od-2026-11-10T08:00:00Z"]?.first?.contains("on-demand point past its retain-until") ?? false, "\(reasons(later))")
    }

    /// Runs `isDue` every five minutes from `from` to `to` and "backs up" whenever it says so; returns when.
    private func simulateCron(_ policy: BackupPolicy, from: Date, to: Date, last: Date?) -> [Date] {
        var last = last
        var runs: [Date] = []
        var now = from
        while now <= to {
            if policy.isDue(now: now, lastScheduledBackup: last) {
                runs.append(now)
                last = now.addingTimeInterval(10)
            }
            now = now.addingTimeInterval(300)
        }
        return runs
    }
}
