import { deepStrictEqual as eql, equal, ok } from "node:assert/strict";
import fc from "fast-check";
import { commonPrefixLength, compareDistance } from "../../../../kernel/discovery/dht/contact.ts";
import { ipPrefix, randomIdInBucket, RoutingTable } from "../../../../kernel/discovery/dht/routing_table.ts";

const self = new Uint8Array(32);

/** An ID in bucket `bucket` of the all-zero ID, made unique by `n`. */
function idIn(bucket: number, n: number): Uint8Array {
  const id = new Uint8Array(32);
  id[bucket >> 3] = 0x80 >> (bucket & 7);
  id[30] = n >> 8;
  id[31] = n & 0xff;
  return id;
}

const addr = (ip: string, port = 7475) => ({ hostname: ip, port });
const none = { prefixLimitExempt: () => false };

Deno.test("admit() files a contact by the prefix it shares with our ID and keeps k per bucket", () => {
  const table = new RoutingTable(self, { k: 3, ...none });
  for (let n = 0; n < 3; n++) equal(table.admit({ id: idIn(0, n), addr: addr(`10.0.${n}.1`) }, n).result, "added");
  equal(table.bucketOf(idIn(5, 1)), 5);
  const full = table.admit({ id: idIn(0, 3), addr: addr("10.0.3.1") }, 10);
  equal(full.result, "cached");
  ok(full.result === "cached" && full.ping);
  eql(full.result === "cached" && full.ping!.id, idIn(0, 0), "the least recently seen entry is the one to ping");
  equal(table.size, 3);
  eql(table.replacements(0).map((e) => e.id), [idIn(0, 3)]);
  ok(table.canAdmit(idIn(0, 4), addr("10.0.4.1")), "room in the replacement cache");
  ok(!table.hasRoom(idIn(0, 4), addr("10.0.4.1")), "but not in the bucket");
  ok(table.hasRoom(idIn(1, 0), addr("10.0.5.1")));
  equal(table.admit({ id: self, addr: addr("10.9.9.9") }, 0).result, "refused");
});

Deno.test("a full bucket's least recently seen entry that fails is replaced from the replacement cache", () => {
  const table = new RoutingTable(self, { k: 2, ...none });
  table.admit({ id: idIn(0, 0), addr: addr("10.0.0.1") }, 0);
  table.admit({ id: idIn(0, 1), addr: addr("10.0.1.1") }, 1);
  table.seen(idIn(0, 0), 5); // now 0:1 is the least recently seen
  const cached = table.admit({ id: idIn(0, 2), addr: addr("10.0.2.1") }, 6);
  ok(cached.result === "cached" && cached.ping);
  eql(cached.ping.id, idIn(0, 1));
  ok(table.failed(idIn(0, 1)), "it leaves at once when a replacement waits");
  eql(table.bucket(0).map((e) => e.id), [idIn(0, 0), idIn(0, 2)]);
  equal(table.replacements(0).length, 0);
});

Deno.test("an entry without a replacement leaves after three failures in a row, and an answer resets the count", () => {
  const table = new RoutingTable(self, none);
  table.admit({ id: idIn(3, 0), addr: addr("10.0.0.1") }, 0);
  ok(!table.failed(idIn(3, 0)));
  ok(!table.failed(idIn(3, 0)));
  table.seen(idIn(3, 0), 1);
  ok(!table.failed(idIn(3, 0)));
  ok(!table.failed(idIn(3, 0)));
  ok(table.failed(idIn(3, 0)));
  equal(table.size, 0);
});

Deno.test("a bucket holds at most 2 IDs of one /24 and the table at most 10; loopback is exempt by default", () => {
  const table = new RoutingTable(self, none);
  equal(table.admit({ id: idIn(0, 0), addr: addr("198.51.100.1") }, 0).result, "added");
  equal(table.admit({ id: idIn(0, 1), addr: addr("198.51.100.2") }, 0).result, "added");
  eql(table.admit({ id: idIn(0, 2), addr: addr("198.51.100.3") }, 0), { result: "refused", reason: "prefix" });
  equal(table.admit({ id: idIn(0, 3), addr: addr("198.51.101.3") }, 0).result, "added", "another /24 is fine");
  for (let b = 1; b <= 4; b++) {
    equal(table.admit({ id: idIn(b, 0), addr: addr("198.51.100.10", b) }, 0).result, "added");
    equal(table.admit({ id: idIn(b, 1), addr: addr("198.51.100.11", b) }, 0).result, "added");
  }
  eql(
    table.admit({ id: idIn(6, 0), addr: addr("198.51.100.12") }, 0),
    { result: "refused", reason: "prefix" },
    "10 of the /24 in the table",
  );
  const v6 = new RoutingTable(self, none);
  v6.admit({ id: idIn(0, 0), addr: addr("2001:db8:1:1::1") }, 0);
  v6.admit({ id: idIn(0, 1), addr: addr("2001:db8:1:2::1") }, 0);
  equal(v6.admit({ id: idIn(0, 2), addr: addr("2001:db8:1:ffff::1") }, 0).result, "refused", "one /48");
  const loop = new RoutingTable(self);
  for (let n = 0; n < 5; n++) {
    equal(loop.admit({ id: idIn(0, n), addr: addr("127.0.0.1", 1000 + n) }, 0).result, "added");
  }
  equal(ipPrefix("203.0.113.9"), "4:203.0.113");
});

Deno.test("one address holds one ID: another ID at an admitted address is refused", () => {
  const table = new RoutingTable(self);
  table.admit({ id: idIn(0, 0), addr: addr("127.0.0.1") }, 0);
  eql(table.admit({ id: idIn(1, 0), addr: addr("127.0.0.1") }, 0), { result: "refused", reason: "address" });
  ok(!table.canAdmit(idIn(1, 0), addr("127.0.0.1")));
  equal(table.admit({ id: idIn(0, 0), addr: addr("127.0.0.2") }, 1).result, "updated", "a known ID may move");
  eql(table.get(idIn(0, 0))!.addr, addr("127.0.0.2"));
  ok(table.canAdmit(idIn(1, 0), addr("127.0.0.1")), "its old address is free again");
});

Deno.test("closest() returns what sorting the whole table by XOR distance returns (fast-check)", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 120 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.integer({ min: 1, max: 40 }),
      (me, ids, target, count) => {
        const table = new RoutingTable(me, { k: 8 });
        ids.forEach((id, i) => table.admit({ id, addr: addr("127.0.0.1", i + 1) }, 0));
        const all = table.entries().map((e) => e.id).sort((a, b) => compareDistance(a, b, target));
        eql(table.closest(target, count).map((e) => e.id), all.slice(0, count));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("randomIdInBucket() draws an ID that shares exactly the bucket's prefix length with ours", () => {
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.integer({ min: 0, max: 255 }),
    (me, random, index) => equal(commonPrefixLength(me, randomIdInBucket(me, index, random)), index),
  ));
});

Deno.test("staleBuckets() names the buckets up to the deepest non-empty one not looked up in lately", () => {
  const table = new RoutingTable(self, {}, 0);
  table.admit({ id: idIn(4, 0), addr: addr("127.0.0.1") }, 0);
  table.touch(2, 50);
  eql(table.staleBuckets(100, 60), [0, 1, 3, 4]);
});
