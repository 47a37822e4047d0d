#!/usr/bin/env python3
"""Bad toxic attributes through the API: 400 naming the attribute.

For every toxic type and every attribute it takes (its own and the
scheduling ones), a negative, fractional, string or absurdly large value
is refused with 400 and an error that names the attribute; a required
one missing likewise. Toxiproxy crashes on slicer average_size=0 and
bandwidth rate<0: tardyd answers 400. The daemon keeps serving
throughout, and nothing of a refused request is left behind.
"""

import re

import tardytest
from tardytest import echo_server, expect, now, recv_exactly

TYPES = {
    "latency": ["latency", "jitter"],
    "bandwidth": ["rate"],
    "slow_close": ["delay"],
    "timeout": ["timeout"],
    "reset_peer": ["timeout"],
    "slicer": ["average_size", "size_variation", "delay"],
    "limit_data": ["bytes"],
    "noop": [],
    "blackhole": [],
    "stall": [],
    "refuse": [],
    "drop_syn": [],
}
# Attributes a type cannot do without.
REQUIRED = {"slicer": {"average_size": 100}}
SCHED = ["after_bytes", "after_ms", "duration_ms", "every", "first"]
# Times in ms or µs beyond any use (2^53 ms is 285,000 years) and sizes
# past any buffer; a byte count or connection ordinal of 2^53 can be
# meant, so those only get 2^63 and 2^64 (test_beyond_int64_is_refused),
# past what a signed 64-bit attribute holds. A JSON parser may refuse
# those before the attribute is looked at, so there only 400 is asked.
HUGE_TIME = 2 ** 53
TIME_ATTRS = {"latency", "jitter", "delay", "timeout", "after_ms",
              "duration_ms"}
BAD_VALUES = [
    ("negative", -1),
    ("very negative", -2 ** 62),
    ("fractional", 1.5),
    ("integral float", 10.0),
    ("string", "10"),
    ("boolean", True),
    ("object", {"v": 1}),
]


def huge_values(attr):
    if attr in TIME_ATTRS or attr == "rate" or attr in ("average_size",
                                                       "size_variation"):
        return [("huge", HUGE_TIME)]
    return []


class Lab(tardytest.Lab):
    """tardytest's Lab, and what a refused request must leave intact."""

    def post(self, body, path="/proxies/p/toxics"):
        return self.d.api("POST", path, body)

    def alive(self):
        expect(self.d.proc.poll() is None, "tardyd died: %s" % self.d.log())

    def serves(self):
        """The daemon answers, holds no toxic and forwards data."""
        self.alive()
        st, v = self.d.api("GET", "/version")
        expect(st == 200 and "version" in v, "GET /version: %s %r" % (st, v))
        st, toxics = self.d.api("GET", "/proxies/p/toxics")
        expect(st == 200 and toxics == [],
               "refused toxics left behind: %s %r" % (st, toxics))
        s = tardytest.connect(self.addr)
        s.sendall(b"still here")
        expect(recv_exactly(s, 10, 2) == b"still here", "forwarding broke")
        s.close()


def names(error, attr):
    return re.search(r"\b%s\b" % re.escape(attr), error) is not None


def expect_400(lab, body, attr, what):
    st, r = lab.post(body)
    expect(st == 400, "%s: status %s %r, expected 400" % (what, st, r))
    expect(isinstance(r, dict) and isinstance(r.get("error"), str),
           "%s: error body %r" % (what, r))
    expect(r.get("status") == 400, "%s: body status %r" % (what, r))
    if attr is not None:
        expect(names(r["error"], attr), "%s: error %r does not name %s" %
               (what, r["error"], attr))
    return r["error"]


def test_bad_values_every_type_and_attribute():
    checked = 0
    with echo_server() as srv, Lab(srv.spec) as lab:
        for type_, attrs in TYPES.items():
            for attr in attrs + SCHED:
                for label, value in BAD_VALUES + huge_values(attr):
                    a = dict(REQUIRED.get(type_, {}))
                    a[attr] = value
                    expect_400(lab, {"type": type_, "attributes": a}, attr,
                               "%s %s %s (%r)" % (type_, attr, label, value))
                    checked += 1
            lab.alive()
        lab.serves()
    print("# %d bad attribute values refused, each naming its attribute" %
          checked)


def test_beyond_int64_is_refused():
    with echo_server() as srv, Lab(srv.spec) as lab:
        for type_, attrs in TYPES.items():
            for attr in attrs + SCHED:
                for value in (2 ** 63, 2 ** 64, -2 ** 63 - 1):
                    a = dict(REQUIRED.get(type_, {}))
                    a[attr] = value
                    st, r = lab.post({"type": type_, "attributes": a})
                    expect(st == 400, "%s %s=%d: %s %r" %
                           (type_, attr, value, st, r))
        lab.serves()


def test_missing_required_attribute():
    with echo_server() as srv, Lab(srv.spec) as lab:
        expect_400(lab, {"type": "slicer", "attributes": {}}, "average_size",
                   "slicer without average_size")
        expect_400(lab, {"type": "slicer"}, "average_size",
                   "slicer without attributes")
        expect_400(lab, {"type": "slicer",
                         "attributes": {"size_variation": 10, "delay": 5}},
                   "average_size", "slicer with the others only")
        lab.serves()


def test_missing_optional_attributes_default():
    # As in Toxiproxy, an attribute left out is 0; only slicer needs one.
    with echo_server() as srv, Lab(srv.spec) as lab:
        for type_, attrs in TYPES.items():
            if type_ in REQUIRED:
                continue
            st, t = lab.post({"type": type_})
            expect(st == 200, "%s without attributes: %s %r" % (type_, st, t))
            for a in attrs:
                expect(t["attributes"].get(a) == 0, "%s default %s: %r" %
                       (type_, a, t["attributes"]))
            st, _ = lab.d.api("DELETE", "/proxies/p/toxics/" + t["name"])
            expect(st == 204, "delete %s: %s" % (t["name"], st))
        lab.serves()


def test_toxiproxy_crashers_are_400():
    with echo_server() as srv, Lab(srv.spec) as lab:
        expect_400(lab, {"type": "slicer", "attributes": {"average_size": 0}},
                   "average_size", "slicer average_size=0")
        expect_400(lab, {"type": "slicer",
                         "attributes": {"average_size": 0,
                                        "size_variation": 0, "delay": 0}},
                   "average_size", "slicer all zero")
        expect_400(lab, {"type": "bandwidth", "attributes": {"rate": -1}},
                   "rate", "bandwidth rate=-1")
        expect_400(lab, {"type": "slicer",
                         "attributes": {"average_size": 10,
                                        "size_variation": 20}},
                   "size_variation", "slicer size_variation > average_size")
        expect_400(lab, {"type": "latency", "attributes": {"jitter": -5}},
                   "jitter", "latency jitter=-5")
        expect_400(lab, {"type": "latency", "attributes": {"every": 0}},
                   "every", "every=0")
        lab.serves()


def test_slicer_size_variation_up_to_average_size():
    # As in Toxiproxy, size_variation may equal average_size (pieces then
    # run from 1 byte to twice the average); only above it is refused,
    # where Toxiproxy crashes. Updates follow the same rule.
    with echo_server() as srv, Lab(srv.spec) as lab:
        for avg in (1, 10):
            st, t = lab.post({"type": "slicer", "name": "s",
                              "attributes": {"average_size": avg,
                                             "size_variation": avg}})
            expect(st == 200 and t["attributes"]["size_variation"] == avg,
                   "size_variation = average_size = %d: %s %r" %
                   (avg, st, t))
            s = tardytest.connect(lab.addr)
            data = bytes(range(256)) * 8
            s.sendall(data)
            expect(recv_exactly(s, len(data), 5) == data,
                   "sliced at %d±%d: data corrupted" % (avg, avg))
            s.close()
            st, _ = lab.d.api("DELETE", "/proxies/p/toxics/s")
            expect(st == 204, "delete: %s" % st)
        expect_400(lab, {"type": "slicer",
                         "attributes": {"average_size": 10,
                                        "size_variation": 11}},
                   "size_variation", "slicer size_variation = average_size+1")
        st, t = lab.post({"type": "slicer", "name": "s",
                          "attributes": {"average_size": 10,
                                         "size_variation": 5}})
        expect(st == 200, "slicer 10±5: %s %r" % (st, t))
        st, t = lab.d.api("POST", "/proxies/p/toxics/s",
                          {"attributes": {"size_variation": 10}})
        expect(st == 200 and t["attributes"]["size_variation"] == 10,
               "update to size_variation = average_size: %s %r" % (st, t))
        st, r = lab.d.api("POST", "/proxies/p/toxics/s",
                          {"attributes": {"average_size": 9}})
        expect(st == 400 and names(r.get("error", ""), "size_variation"),
               "update average_size below size_variation: %s %r" % (st, r))
        st, _ = lab.d.api("DELETE", "/proxies/p/toxics/s")
        expect(st == 204, "delete: %s" % st)
        lab.serves()


def test_bad_toxicity_stream_type():
    with echo_server() as srv, Lab(srv.spec) as lab:
        for tox in (2, 1.01, -0.5, "0.5", True):
            expect_400(lab, {"type": "latency", "toxicity": tox}, "toxicity",
                       "toxicity %r" % (tox,))
        err = expect_400(lab, {"type": "latency", "stream": "sideways"},
                         None, "stream sideways")
        expect(err == "stream was invalid, can be either upstream or "
               "downstream", "stream error %r" % err)
        err = expect_400(lab, {"type": "nope"}, None, "type nope")
        expect(err == "invalid toxic type", "type error %r" % err)
        err = expect_400(lab, {"name": "x"}, None, "no type")
        for attrs in ([1, 2], "latency=5", 7):
            expect_400(lab, {"type": "latency", "attributes": attrs}, None,
                       "attributes %r" % (attrs,))
        lab.serves()


def test_bad_update_changes_nothing():
    with echo_server() as srv, Lab(srv.spec) as lab:
        st, t = lab.post({"type": "latency", "name": "lat",
                          "attributes": {"latency": 10, "jitter": 5}})
        expect(st == 200, "add: %s %r" % (st, t))
        path = "/proxies/p/toxics/lat"
        for attr, value in (("latency", -1), ("jitter", 1.5),
                            ("latency", "100"), ("every", 0),
                            ("after_ms", HUGE_TIME)):
            for method in ("POST", "PATCH"):
                st, r = lab.d.api(method, path,
                                  {"attributes": {"latency": 20,
                                                  attr: value}})
                expect(st == 400 and names(r.get("error", ""), attr),
                       "%s %s=%r: %s %r" % (method, attr, value, st, r))
        # All or nothing: the good latency=20 beside a bad value was not
        # applied either.
        st, t = lab.d.api("GET", path)
        expect(st == 200 and t["attributes"]["latency"] == 10 and
               t["attributes"]["jitter"] == 5, "after bad updates: %r" % t)
        st, _ = lab.d.api("DELETE", path)
        expect(st == 204, "delete: %s" % st)
        lab.serves()


def test_daemon_survives_a_burst_of_bad_requests():
    with echo_server() as srv, Lab(srv.spec) as lab:
        t0 = now()
        n = 0
        while now() - t0 < 1.0 and n < 2000:
            lab.post({"type": "slicer", "attributes": {"average_size": 0}})
            lab.post({"type": "bandwidth", "attributes": {"rate": -1}})
            n += 2
        lab.serves()
        print("# %d crashing requests in %.1f s, daemon still serving" %
              (n, now() - t0))


if __name__ == "__main__":
    tardytest.main(globals())
