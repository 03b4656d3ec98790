package main

// benchReport is the committed bench-report campaign the charts of
// BENCHMARKS.md are drawn from (bench-results/charts).
const benchReport = "../../../bench-results/report-20261207"
