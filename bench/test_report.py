"""bench/report.py's arithmetic: medians, ratios of medians, targets, baselines by alias."""
import unittest

import report

LINES = """
RESULT mproc pingpong p50 30.000 us
RESULT python pingpong p50 50.000 us
RESULT raw pingpong p50 20.000 us
RESULT mproc pingpong p50 40.000 us
RESULT python pingpong p50 60.000 us
RESULT raw pingpong p50 24.000 us
RESULT mproc pipe_pingpong p50 100.000 us
RESULT mproc pool_map_auto throughput 5000000.000 items/s
RESULT python pool_map_auto throughput 2000000.000 items/s
RESULT mproc spawn_first_reply median 0.800 ms
RESULT raw spawn_first_reply median 0.080 ms
not a result line
""".splitlines()


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.parsed = report.parse(LINES)
        self.data, _ = self.parsed

    def test_ratio_is_of_medians(self):
        self.assertAlmostEqual(report.ratio(self.data, ("pingpong", "p50"), "raw"), 35 / 22)

    def test_a_round_trip_over_its_bound_is_missed(self):
        # 1.59x raw > 1.3x; 0.64x python > 0.5x
        self.assertEqual(report.verdict(self.data, ("pingpong", "p50"))[1],
                         "**missed**, **missed**")

    def test_each_target_of_a_workload_is_judged(self):
        self.assertEqual(report.verdict(self.data, ("spawn_first_reply", "median"))[1],
                         "met, **missed**")  # 0.8 ms <= 1 ms; 10x raw > 8x

    def test_throughput_under_its_bound_is_missed(self):  # 2.5x python < 6x
        self.assertEqual(report.verdict(self.data, ("pool_map_auto", "throughput"))[1],
                         "**missed**")

    def test_a_target_against_shared_memory_is_judged(self):
        lines = ["RESULT mproc oneway_batched throughput 9000000 msg/s",
                 "RESULT python oneway_batched throughput 2000000 msg/s",
                 "RESULT shm oneway_batched throughput 20000000 msg/s"]
        data, _ = report.parse(lines)
        self.assertEqual(report.verdict(data, ("oneway_batched", "throughput"))[1],
                         "met, met")  # 4.5x python >= 3x; 0.45x shm >= 0.3x

    def test_encryption_is_judged_against_the_same_workload_in_clear(self):
        lines = ["RESULT mproc tcp_pingpong p50 40 us", "RESULT raw tcp_pingpong p50 20 us",
                 "RESULT mproc tcp_pingpong_plaintext p50 36 us",
                 "RESULT mproc tls_records median 900 MiB/s"]
        data, _ = report.parse(lines)
        self.assertAlmostEqual(report.ratio(data, ("tcp_pingpong", "p50"),
                                            "row:tcp_pingpong_plaintext"), 40 / 36)
        # 2x raw > 1.3x; 1.11x in clear <= 1.15x; 900 MiB/s < 1 GiB/s
        self.assertEqual(report.verdict(data, ("tcp_pingpong", "p50")),
                         ("<= 1.3× raw, <= 1.15× tcp_pingpong_plaintext", "**missed**, met"))
        self.assertEqual(report.verdict(data, ("tls_records", "median"))[1],
                         "**missed**")

    def test_pipe_rows_use_the_pingpong_baselines(self):
        self.assertEqual(report.ratio(self.data, ("pipe_pingpong", "p50"), "python"), 100 / 55)

    def test_table_shows_median_with_range_and_dashes_for_absent_systems(self):
        table = report.table(self.parsed)
        self.assertIn("| pingpong | p50 (us) | 35.0 (30.0–40.0) | 55.0 (50.0–60.0) |", table)
        self.assertIn("| pool_map_auto | throughput (items/s) | 5,000,000 | 2,000,000 | — |",
                      table)


if __name__ == "__main__":
    unittest.main()
