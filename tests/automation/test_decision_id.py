"""``new_decision_id`` is ``rng.bytes(8).hex()``: the same ids and the same generator state."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.automation.ranking import new_decision_id

BIT_GENERATORS = [np.random.PCG64, np.random.MT19937, np.random.Philox, np.random.SFC64]


@settings(max_examples=200, deadline=None)
@given(
    bit_generator=st.sampled_from(BIT_GENERATORS),
    seed=st.integers(0, 2**64 - 1),
    # draws before and between ids, some leaving half a 64-bit output buffered
    steps=st.lists(st.sampled_from(["id", "uint32", "random", "beta", "bytes3"]), max_size=12),
)
def test_the_same_ids_from_the_same_draws(
    bit_generator: type[np.random.BitGenerator], seed: int, steps: list[str]
) -> None:
    fast, slow = (np.random.Generator(bit_generator(seed)) for _ in range(2))
    for step in [*steps, "id"]:
        if step == "id":
            assert new_decision_id(fast) == slow.bytes(8).hex()
        else:
            for rng in (fast, slow):
                if step == "uint32":
                    rng.integers(0, 2**32, dtype=np.uint32)
                elif step == "random":
                    rng.random()
                elif step == "beta":
                    rng.beta(2.0, 3.0)
                else:
                    rng.bytes(3)
    assert fast.random() == slow.random()
