"""The suite's own arrangement: tests sharing the run of the shipped plan stay on one
xdist worker, so that run happens once (``make test`` runs ``-n 2 --dist loadgroup``)."""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("shipped")
def test_loadgroup_groups_this_test(request: pytest.FixtureRequest) -> None:
    workerinput = getattr(request.config, "workerinput", None)
    if workerinput is None:
        pytest.skip("not running under pytest-xdist")
    argv = " ".join(workerinput.get("mainargv", []))
    if "loadgroup" not in argv:
        pytest.skip("not running with --dist loadgroup")
    # xdist marks a grouped test by appending "@group" to its node id; without it the
    # group is ignored and every worker computes the shared run on its own
    assert request.node.nodeid.endswith("@shipped"), request.node.nodeid
