import { deepEqual, equal, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import {
  decodeIgdDescription,
  decodeSoapResponse,
  decodeSsdpResponse,
  encodeSoapRequest,
  encodeSsdpSearch,
  MalformedPortMapMessageError,
  UpnpClient,
} from "../../../transport/mod.ts";
import vectors from "../../../spec/vectors/portmap/upnp_igd.json" with { type: "json" };

const utf8 = (text: string) => new TextEncoder().encode(text);

function malformed(pattern: string) {
  return (e: Error) => {
    ok(e instanceof MalformedPortMapMessageError, `${e.name}: ${e.message}`);
    ok(e.message.includes(pattern), `"${e.message}" lacks "${pattern}"`);
    return true;
  };
}

Deno.test("upnp: encodeSsdpSearch() writes the M-SEARCH of UDA 1.1 section 1.3.2", () => {
  equal(new TextDecoder().decode(encodeSsdpSearch(vectors.ssdpSearch.st)), vectors.ssdpSearch.text);
  throws(() => encodeSsdpSearch("a\r\nMAN: x"), SyntaxError);
});

for (const v of vectors.ssdpResponses) {
  Deno.test(`upnp: decodeSsdpResponse() reads ${v.name}`, () => {
    const r = decodeSsdpResponse(utf8(v.text));
    equal(r.location, v.location);
    equal(r.st, v.st);
    equal(r.usn, v.usn);
    equal(r.headers["cache-control"], "max-age=120");
  });
}

for (const v of vectors.malformedSsdpResponses) {
  Deno.test(`upnp: decodeSsdpResponse() rejects ${v.name}`, () => {
    throws(() => decodeSsdpResponse(utf8(v.text)), malformed(v.error));
  });
}

Deno.test("upnp: decodeSsdpResponse() throws only MalformedPortMapMessageError on random input", () => {
  const header = fc.tuple(
    fc.constantFrom("LOCATION", "ST", "USN", "X"),
    fc.string({ maxLength: 30 }),
  ).map(([n, v]) => `${n}: ${v}`);
  const texty = fc.tuple(fc.constantFrom("HTTP/1.1 200 OK", "HTTP/1.0 200", "HTTP/1.1 404 x", ""), fc.array(header))
    .map(([status, lines]) => utf8([status, ...lines, "", ""].join("\r\n")));
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), texty), (bytes) => {
      try {
        decodeSsdpResponse(bytes);
      } catch (e) {
        if (!(e instanceof MalformedPortMapMessageError)) throw e;
      }
    }),
    { numRuns: 2000 },
  );
  throws(() => decodeSsdpResponse(new Uint8Array(9000)), malformed("expected <= 8192"));
  throws(() => decodeSsdpResponse(new Uint8Array([0xff, 0xfe])), malformed("not UTF-8"));
});

for (const v of vectors.descriptions) {
  Deno.test(`upnp: decodeIgdDescription() finds the WAN connection service in ${v.name}`, () => {
    deepEqual(decodeIgdDescription(v.xml, v.location), { serviceType: v.serviceType, controlUrl: v.controlUrl });
  });
}

for (const v of vectors.malformedDescriptions) {
  Deno.test(`upnp: decodeIgdDescription() rejects ${v.name}`, () => {
    throws(() => decodeIgdDescription(v.xml, "http://10.0.1.1/d.xml"), malformed(v.error));
  });
}

for (const v of vectors.soapRequests) {
  Deno.test(`upnp: encodeSoapRequest() writes ${v.name}`, () => {
    equal(encodeSoapRequest(v.serviceType, v.action, v.args as Array<[string, string | number]>), v.text);
  });
}

Deno.test("upnp: encodeSoapRequest() refuses names that would break the envelope", () => {
  throws(() => encodeSoapRequest("urn:x", "Add<x>", []), SyntaxError);
  throws(() => encodeSoapRequest("urn:x", "Add", [["a b", 1]]), SyntaxError);
});

for (const v of vectors.soapResponses) {
  Deno.test(`upnp: decodeSoapResponse() reads ${v.name}`, () => {
    deepEqual(decodeSoapResponse(v.xml, v.action), v.result);
  });
}

for (const v of vectors.malformedSoapResponses) {
  Deno.test(`upnp: decodeSoapResponse() rejects ${v.name}`, () => {
    throws(() => decodeSoapResponse(v.xml, v.action), malformed(v.error));
  });
}

Deno.test("upnp: the XML decoders throw only MalformedPortMapMessageError on random and mangled documents", () => {
  const docs = [...vectors.descriptions.map((d) => d.xml), ...vectors.soapResponses.map((s) => s.xml)];
  const mangled = fc.tuple(fc.constantFrom(...docs), fc.nat(), fc.nat(), fc.string({ maxLength: 8 }))
    .map(([doc, a, b, insert]) => {
      const i = a % doc.length, j = Math.min(doc.length, i + (b % 40));
      return doc.slice(0, i) + insert + doc.slice(j);
    });
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 200 }), mangled), (xml) => {
      for (const decode of [() => decodeIgdDescription(xml, "http://10.0.1.1/"), () => decodeSoapResponse(xml, "X")]) {
        try {
          decode();
        } catch (e) {
          if (!(e instanceof MalformedPortMapMessageError)) throw e;
        }
      }
    }),
    { numRuns: 1500 },
  );
  throws(() => decodeSoapResponse("<a>" + "x".repeat(140_000) + "</a>", "X"), malformed("expected <= 131072"));
});

Deno.test("upnp: UpnpClient validates its options", () => {
  throws(() => new UpnpClient({ internalAddress: "host" }), /internalAddress is not an IPv4 address/);
  throws(() => new UpnpClient({ internalAddress: "10.0.1.10", gateway: "::1" }), /gateway is not an IPv4 address/);
  throws(() => new UpnpClient({ internalAddress: "10.0.1.10", location: "https://10.0.1.1/" }), /http URL/);
});
