# Sourced by scripts/ci/extra-*.sh: CI's time budget for one-off tool builds.
# .ci/run sets OCVR_CI_DEADLINE (unix seconds: its start + 29 min). A tool
# built from the Go module proxy is cached outside the clone (scripts/tools.sh)
# and costs nothing the next time, but on a fresh machine the first build of a
# large one (kube-controller-manager ≈ 9 min, KEDA ≈ 16 min on 2 busy cores)
# would push .ci/run past its 30 minutes. ci_budget_allows SECONDS says whether
# that much work still fits; outside CI (no deadline) it always does.
ci_budget_allows() {
	local need=$1
	[ -n "${OCVR_CI_DEADLINE:-}" ] || return 0
	[ $(($(date +%s) + need)) -le "$OCVR_CI_DEADLINE" ]
}

# ci_budget_left: seconds left before the deadline (or "unbounded").
ci_budget_left() {
	if [ -n "${OCVR_CI_DEADLINE:-}" ]; then
		echo $((OCVR_CI_DEADLINE - $(date +%s)))
	else
		echo unbounded
	fi
}
