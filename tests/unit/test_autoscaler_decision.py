"""The autoscaler's pure decision (autoscaler/decision.py): bursts, idle periods, flapping load,
an unreadable broker, and several hosts computing their shares."""

import pytest

from autoscaler.decision import (
    AUTO, DRAINED, FIXED, Memory, Mode, Observation, Policy, cluster_need, decide, host_share,
)

HOSTS = ("worker1", "worker2")


def policy(host="worker1", hosts=HOSTS, low=1, high=4, cooldown=30, concurrency=8):
    return Policy(host=host, hosts=hosts, concurrency=concurrency, min_instances=low,
                  max_instances=high, cooldown=cooldown)


def seen(now, load, running=(1,), stopping=(), error=None):
    return Observation(now, load, frozenset(running), frozenset(stopping), error)


class Host:
    """One host's autoscaler over time: applies its decisions to its own instances, and a
    stop takes `stop_rounds` rounds (a warm shutdown)."""

    def __init__(self, policy, running=(1,), stop_rounds=0):
        self.policy, self.running, self.stopping = policy, set(running), {}
        self.memory, self.mode, self.stop_rounds = Memory(), Mode(AUTO), stop_rounds

    def step(self, now, load, error=None):
        for number in list(self.stopping):
            self.stopping[number] -= 1
            if self.stopping[number] < 0:
                del self.stopping[number]
        observation = Observation(now, load, frozenset(self.running),
                                  frozenset(self.stopping), error)
        decision = decide(self.policy, self.mode, observation, self.memory)
        self.memory = decision.memory
        self.running |= set(decision.start)
        for number in decision.stop:
            self.running.discard(number)
            self.stopping[number] = self.stop_rounds
        return decision


# --- need and shares ---------------------------------------------------------------------------


@pytest.mark.parametrize("load, need", [(0, 0), (1, 1), (8, 1), (9, 2), (100, 13)])
def test_need_is_the_keda_rule(load, need):
    assert cluster_need(load, 8) == need


@pytest.mark.parametrize("need", range(0, 12))
@pytest.mark.parametrize("hosts", [("w1",), ("w1", "w2"), ("w3", "w1", "w2")])
def test_shares_add_up_to_the_need_and_differ_by_one_at_most(need, hosts):
    shares = [host_share(need, hosts, h) for h in hosts]
    assert sum(shares) == need
    assert max(shares) - min(shares) <= 1


def test_shares_go_to_hosts_by_name_whatever_the_inventory_order():
    assert host_share(3, ("w2", "w1"), "w1") == 2
    assert host_share(3, ("w1", "w2"), "w1") == 2
    assert host_share(3, ("w2", "w1"), "w2") == 1


def test_hosts_together_never_overshoot_the_need_above_their_minimums():
    """Each host alone computes its target; together they start what the cluster needs."""
    hosts = ("worker1", "worker2", "worker3")
    for load in (0, 5, 17, 40, 64, 200):
        targets = [decide(policy(h, hosts, low=0, high=10), Mode(), seen(0, load, ()),
                          Memory()).target for h in hosts]
        assert sum(targets) == min(cluster_need(load, 8), 30), load


# --- bursts ------------------------------------------------------------------------------------


def test_a_burst_scales_up_to_the_share_in_one_step():
    decision = decide(policy(), Mode(), seen(0, load=48), Memory())
    # need 6 over 2 hosts: 3 here; one runs, two start, lowest free numbers.
    assert (decision.target, decision.start, decision.stop) == (3, (2, 3), ())


def test_a_burst_beyond_the_maximum_stops_at_the_maximum():
    assert decide(policy(high=4), Mode(), seen(0, load=1000), Memory()).start == (2, 3, 4)


def test_new_instances_avoid_numbers_still_stopping():
    decision = decide(policy(), Mode(), seen(0, 48, running=(1,), stopping=(2,)), Memory())
    assert decision.start == (3, 4)


# --- idle, cooldown and the warm stop ----------------------------------------------------------


def test_idle_scales_in_after_the_cooldown_one_instance_at_a_time_highest_first():
    host = Host(policy(cooldown=30), running=(1, 2, 3))
    stops = []
    for now in range(0, 200, 5):
        decision = host.step(now, load=0)
        if decision.stop:
            stops.append((now, decision.stop))
    assert stops == [(30, (3,)), (60, (2,))]
    assert host.running == {1}


def test_no_second_stop_while_the_first_instance_still_finishes_its_tasks():
    host = Host(policy(cooldown=10), running=(1, 2, 3), stop_rounds=20)
    stops = [(now, d.stop) for now in range(0, 300, 5) if (d := host.step(now, load=0)).stop]
    assert stops[0] == (10, (3,))
    # The second stop waits for the first to end (20 rounds = 100 s later), then the cooldown.
    assert stops[1][0] >= 10 + 100


def test_never_below_the_minimum():
    host = Host(policy(low=2, cooldown=0), running=(1, 2, 3))
    for now in range(0, 100, 5):
        host.step(now, load=0)
    assert host.running == {1, 2}


def test_a_host_below_its_minimum_is_brought_up_to_it_at_once():
    assert decide(policy(low=2), Mode(), seen(0, 0, running=()), Memory()).start == (1, 2)


# --- flapping load ------------------------------------------------------------------------------


def test_flapping_load_scales_up_at_once_and_in_only_after_a_calm_cooldown():
    host = Host(policy(cooldown=30), running=(1,))
    history = []
    # Load jumps between 48 and 0 every 10 s for two minutes, then stays at 0.
    for now in range(0, 240, 5):
        load = 48 if now < 120 and (now // 10) % 2 == 0 else 0
        decision = host.step(now, load)
        history.append((now, decision.start, decision.stop))
    starts = [h for h in history if h[1]]
    stops = [h for h in history if h[2]]
    assert starts == [(0, (2, 3), ())]  # up once, never again: nothing stopped meanwhile
    calm_since = max(now for now in range(0, 240, 5) if now < 120 and (now // 10) % 2 == 0) + 5
    assert [now for now, _, _ in stops] == [calm_since + 30, calm_since + 60]


# --- an unreadable broker ------------------------------------------------------------------------


def test_an_unreadable_broker_changes_nothing():
    decision = decide(policy(), Mode(), seen(0, None, running=(1, 2, 3), error="timeout"),
                      Memory(below_since=-100))
    assert (decision.start, decision.stop, decision.target) == ((), (), 3)
    assert "broker unreadable (timeout)" in decision.reason


def test_an_unreadable_broker_still_keeps_the_minimum():
    decision = decide(policy(low=2), Mode(), seen(0, None, running=(), error="x"), Memory())
    assert decision.start == (1, 2)


def test_the_cooldown_survives_an_unreadable_round():
    host = Host(policy(cooldown=30), running=(1, 2))
    host.step(0, load=0)
    host.step(5, load=None, error="down")
    assert host.step(30, load=0).stop == (2,)


# --- the operator's modes ------------------------------------------------------------------------


def test_fixed_mode_moves_to_the_count_at_once_whatever_the_load():
    decision = decide(policy(), Mode(FIXED, 1), seen(0, 1000, running=(1, 2, 3)), Memory())
    assert decision.stop == (3, 2)
    assert decide(policy(), Mode(FIXED, 3), seen(0, 0), Memory()).start == (2, 3)


def test_a_drained_host_is_left_alone():
    for load in (0, 1000, None):
        for running in ((), (1, 2)):
            decision = decide(policy(), Mode(DRAINED), seen(0, load, running=running), Memory())
            assert (decision.start, decision.stop) == ((), ())


def test_every_decision_says_why_with_its_inputs():
    decision = decide(policy(), Mode(), seen(0, 48), Memory())
    assert "load 48" in decision.reason and "share 3" in decision.reason


# --- drained and dead hosts ----------------------------------------------------------------------


def test_the_live_hosts_share_the_need_of_a_drained_or_dead_one():
    hosts = ("worker1", "worker2", "worker3")
    live = frozenset({"worker1", "worker3"})
    targets = {
        h: decide(policy(h, hosts, low=0, high=10), Mode(),
                  Observation(0, 40, frozenset(), frozenset(), None, live), Memory()).target
        for h in live
    }
    assert targets == {"worker1": 3, "worker3": 2}


def test_a_host_counts_itself_even_before_its_first_mark():
    decision = decide(policy(), Mode(), Observation(0, 16, frozenset({1}), frozenset(), None,
                                                    frozenset({"worker2"})), Memory())
    assert decision.target == 1 and "over 2 hosts" in decision.reason


def test_the_instances_of_fixed_hosts_are_taken_off_the_need():
    """worker1 fixed at 1: the autoscaling hosts cover the rest of a need of 6 between them."""
    hosts = ("worker1", "worker2", "worker3")
    live, fixed = frozenset(hosts), {"worker1": 1}
    targets = {
        h: decide(policy(h, hosts, low=0, high=10), Mode(),
                  Observation(0, 48, frozenset(), frozenset(), None, live, fixed),
                  Memory()).target
        for h in ("worker2", "worker3")
    }
    assert targets == {"worker2": 3, "worker3": 2}


def test_fixed_hosts_beyond_the_need_leave_the_others_at_their_minimum():
    decision = decide(policy("worker2", low=1), Mode(),
                      Observation(0, 8, frozenset({1, 2}), frozenset(), None,
                                  frozenset(HOSTS), {"worker1": 3}), Memory())
    assert decision.target == 1 and "beyond fixed worker1=3" in decision.reason
