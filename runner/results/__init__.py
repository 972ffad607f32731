"""What a run directory holds, read back without torch or Ray: the run's layout and records
(report), one model of a run's trials for every writer (run_view), the text table and CSV of
`gensweep show` (report), and `gensweep report`'s HTML page (html_report)."""
