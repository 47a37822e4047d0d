#!/usr/bin/env python3
"""Write the seed corpus of fuzz_datapath (fuzz/corpus/fuzz_datapath/).

The format is described at the top of fuzz_datapath.c: a header byte,
6 bytes per toxic, then the script. Run from anywhere; it rewrites the
seeds it names and leaves other files (regression cases) alone.
"""
import os

TYPES = ["noop", "latency", "bandwidth", "slow_close", "timeout",
         "reset_peer", "slicer", "limit_data", "blackhole", "stall",
         "refuse", "drop_syn"]
(CW, UW, CB, UB, CR, UR, CS, US, LN, LW, TU, TR, TA, CC, UC, EN) = range(16)
NOPUMP = 0x80


def toxic(type_, upstream=False, later=False, toxicity=0, sched=0,
          attrs=(0, 0, 0), sval=0):
    """toxicity: 0 or 1 -> 1.0, 2 -> 0.5, 3 -> 0.0; sched: bits for
    after_bytes, after_ms, duration_ms, every, first."""
    b0 = TYPES.index(type_) | (0x80 if later else 0)
    b1 = (1 if upstream else 0) | (toxicity << 1) | (sched << 3)
    return bytes([b0, b1, *attrs, sval])


def op(code, idx=0, *args, pump=True):
    return bytes([code | (idx << 4) | (0 if pump else NOPUMP), *args])


def header(ntoxics, seed=1):
    return bytes([(seed << 4) | (ntoxics - 1)])


def script(*ops):
    return b"".join(ops)


# A conversation: both ways, waits for timers, half-close, drain.
CONVERSATION = script(
    op(CW, 0, 99), op(LW, 0, 10), op(UR), op(UW, 0, 49), op(LW, 0, 10),
    op(CR), op(CB, 0, 3), op(LW, 0, 15), op(UR), op(CS), op(LW, 0, 15),
    op(UR), op(US), op(LW, 0, 15), op(CR))


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "corpus", "fuzz_datapath")
    os.makedirs(out, exist_ok=True)
    seeds = {}
    attrs = {
        "latency": (2, 1, 0), "bandwidth": (1, 0, 0),
        "slow_close": (3, 0, 0), "timeout": (2, 0, 0),
        "reset_peer": (3, 0, 0), "slicer": (7, 3, 2),
        "limit_data": (20, 0, 0),
    }
    for t in TYPES:
        a = attrs.get(t, (0, 0, 0))
        seeds["down-" + t] = header(1) + toxic(t, attrs=a) + CONVERSATION
        seeds["up-" + t] = (header(1) + toxic(t, upstream=True, attrs=a)
                            + CONVERSATION)
        # Added to the open connection, removed and added again.
        seeds["later-" + t] = (header(1)
                               + toxic(t, later=True, attrs=a)
                               + script(op(UW, 0, 200), op(LW, 0, 5),
                                        op(TR), op(CR), op(TA),
                                        op(UW, 0, 200), op(LW, 0, 15),
                                        op(CR), op(US), op(LW, 0, 15),
                                        op(CR)))
    # A chain of three on one stream.
    seeds["chain"] = (header(3)
                      + toxic("latency", attrs=(1, 1, 0))
                      + toxic("slicer", attrs=(3, 1, 1))
                      + toxic("bandwidth", attrs=(2, 0, 0))
                      + script(op(UB, 0, 7), op(LW, 0, 15), op(CR),
                               op(LW, 0, 15), op(CR), op(TR, 1),
                               op(LW, 0, 15), op(CR), op(US),
                               op(LW, 0, 15), op(CR)))
    # Backpressure: a stall while the client sends more than the high
    # water mark, then the stall is lifted.
    seeds["stall-bulk"] = (header(1) + toxic("stall", upstream=True)
                           + script(*[op(CB, 0, 63)] * 6, op(LN), op(UR),
                                    op(TR), op(UR), op(LW, 0, 15),
                                    op(UR), op(LW, 0, 15), op(UR)))
    seeds["bulk-noread"] = (header(1) + toxic("noop")
                            + script(*[op(UB, 0, 63)] * 8,
                                     *[op(LW, 0, 5), op(CR)] * 8))
    seeds["bandwidth-zero"] = (header(1) + toxic("bandwidth")
                               + script(op(UB, 0, 10), op(LW, 0, 15),
                                        op(TU, 0, 0, 3), op(LW, 0, 15),
                                        op(CR)))
    # Scheduling: after_bytes, after_ms, duration_ms, every, first.
    seeds["sched"] = (header(2)
                      + toxic("latency", sched=0b00111, attrs=(3, 0, 0),
                              sval=0b01011001)
                      + toxic("blackhole", upstream=True, sched=0b11100,
                              toxicity=2, sval=0b10100100)
                      + CONVERSATION)
    # Updates mid-stream, valid and refused.
    seeds["update"] = (header(2)
                       + toxic("slicer", attrs=(5, 2, 1))
                       + toxic("limit_data", upstream=True, attrs=(9, 0, 0))
                       + script(op(UW, 0, 255), op(TU, 0, 0, 7),
                                op(TU, 0, 0x41, 0), op(TU, 1, 0x80, 2),
                                op(LW, 0, 10), op(CR), op(CW, 0, 255),
                                op(UR), op(CW, 0, 255), op(UR)))
    # Closing and resetting each end, with data held.
    seeds["close-client"] = (header(1) + toxic("latency", attrs=(3, 0, 0))
                             + script(op(UW, 0, 99), op(CC), op(LW, 0, 15),
                                      op(UR)))
    seeds["reset-upstream"] = (header(1) + toxic("stall", upstream=True)
                               + script(op(CW, 0, 99), op(UC | 0x10),
                                        op(LW, 0, 5), op(CR)))
    seeds["disable"] = (header(1) + toxic("slow_close", attrs=(3, 0, 0))
                        + script(op(CW, 0, 9), op(US), op(EN), op(EN),
                                 op(LN)))
    seeds["timeout-remove"] = (header(1) + toxic("timeout")
                               + script(op(CW, 0, 9), op(TR), op(LW, 0, 5),
                                        op(CR)))
    seeds["upstream-refuses"] = (bytes([0x14]) + toxic("latency")
                                 + script(op(CW, 0, 9), op(CR)))
    seeds["listener"] = (header(2) + toxic("refuse", sched=0b110, sval=5)
                         + toxic("drop_syn")
                         + script(op(LW, 0, 15), op(TR, 1), op(LW, 0, 15),
                                  op(CW, 0, 5), op(UR)))
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
