// The wire encoding of the plugin ABI (abi/README.md, section 7): fields one
// after another, no tags, no padding. Encoder appends; Decoder reads and
// keeps the first error, so a message is decoded field by field and checked
// once at the end with finish().

/** The largest count a reader accepts (section 7.2). */
export const MAX_COUNT: u64 = 1 << 24;
/** The longest identifier, in bytes (section 10.2). */
export const MAX_ID_LENGTH: i32 = 512;

/** Encoder appends fields to a growing byte buffer. */
export class Encoder {
  buf: Uint8Array;
  len: i32 = 0;

  constructor(capacity: i32 = 256) {
    this.buf = new Uint8Array(capacity > 16 ? capacity : 16);
  }

  /** Forgets the bytes written, keeping the buffer. */
  reset(): void {
    this.len = 0;
  }

  /** Cuts the message back to its first n bytes. */
  truncate(n: i32): void {
    if (n < this.len) this.len = n;
  }

  /** A copy of the bytes written. */
  bytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  /** The address of the first byte written; valid until the buffer grows. */
  get dataStart(): usize {
    return this.buf.dataStart;
  }

  private grow(n: i32): void {
    const need = this.len + n;
    if (need <= this.buf.length) return;
    let c = this.buf.length << 1;
    while (c < need) c <<= 1;
    const nb = new Uint8Array(c);
    memory.copy(nb.dataStart, this.buf.dataStart, this.len);
    this.buf = nb;
  }

  u8(v: u8): void {
    this.grow(1);
    unchecked((this.buf[this.len++] = v));
  }

  bool(v: bool): void {
    this.u8(v ? 1 : 0);
  }

  /** Unsigned LEB128, shortest form. */
  uvarint(v: u64): void {
    this.grow(10);
    while (v >= 0x80) {
      unchecked((this.buf[this.len++] = <u8>(v | 0x80)));
      v >>= 7;
    }
    unchecked((this.buf[this.len++] = <u8>v));
  }

  /** Zig-zag, then LEB128. */
  varint(v: i64): void {
    this.uvarint(<u64>((v << 1) ^ (v >> 63)));
  }

  /** IEEE 754 binary64, little-endian, bits kept. */
  f64(v: f64): void {
    this.grow(8);
    store<u64>(this.buf.dataStart + <usize>this.len, reinterpret<u64>(v));
    this.len += 8;
  }

  /** Bytes copied as they are, with no length. */
  raw(b: Uint8Array): void {
    this.rawAt(b.dataStart, b.length);
  }

  /** n bytes at ptr copied as they are. */
  rawAt(ptr: usize, n: i32): void {
    this.grow(n);
    memory.copy(this.buf.dataStart + <usize>this.len, ptr, n);
    this.len += n;
  }

  /** A length, then the bytes. */
  bytesField(b: Uint8Array): void {
    this.uvarint(<u64>b.length);
    this.raw(b);
  }

  /** A length, then the string's UTF-8 bytes. */
  str(s: string): void {
    const n = String.UTF8.byteLength(s);
    this.uvarint(<u64>n);
    this.grow(n);
    String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, this.buf.dataStart + <usize>this.len);
    this.len += n;
  }

  /** Raw UTF-8 text of a string, with no length (an error message). */
  text(s: string): void {
    const n = String.UTF8.byteLength(s);
    this.grow(n);
    String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, this.buf.dataStart + <usize>this.len);
    this.len += n;
  }

  /** A time in Unix nanoseconds; 0 is unset. */
  time(ns: i64): void {
    this.varint(ns);
  }
}

/** Why a message did not decode. */
export enum WireError {
  None = 0,
  /** The message ended before a field did. */
  Truncated = 1,
  /** A field is out of its range, or bytes are left over. */
  Malformed = 2,
}

/** Decoder reads fields from a byte buffer, keeping the first error. */
export class Decoder {
  buf: Uint8Array;
  off: i32 = 0;
  err: WireError = WireError.None;
  /** Why the first identifier read with id() is invalid, or null. An
   *  invalid identifier does not stop decoding; the dispatcher answers
   *  INVALID with this message once the message decoded. */
  invalid: string | null = null;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  /** Starts over on another message. */
  reset(buf: Uint8Array): void {
    this.buf = buf;
    this.off = 0;
    this.err = WireError.None;
    this.invalid = null;
  }

  /** True once a field failed to decode. */
  get failed(): bool {
    return this.err != WireError.None;
  }

  /** The bytes left. */
  get remaining(): i32 {
    return this.buf.length - this.off;
  }

  /** Fails the decoder; later reads return zero values. */
  fail(e: WireError): void {
    if (this.err == WireError.None) this.err = e;
    this.off = this.buf.length;
  }

  /** Checks the message was read whole: no error, no trailing bytes. */
  finish(): WireError {
    if (this.err == WireError.None && this.off != this.buf.length) this.err = WireError.Malformed;
    return this.err;
  }

  u8(): u8 {
    if (this.remaining < 1) {
      this.fail(WireError.Truncated);
      return 0;
    }
    return unchecked(this.buf[this.off++]);
  }

  /** 0 or 1; anything else is malformed. */
  bool(): bool {
    const b = this.u8();
    if (b > 1) {
      this.fail(WireError.Malformed);
      return false;
    }
    return b == 1;
  }

  /** Unsigned LEB128 as Go's encoding/binary reads it: padded forms are
   *  accepted within 10 bytes and 64 bits. */
  uvarint(): u64 {
    let x: u64 = 0;
    let s: u64 = 0;
    const end = this.buf.length;
    for (let i = 0; this.off + i < end; i++) {
      if (i == 10) {
        this.fail(WireError.Malformed);
        return 0;
      }
      const b = unchecked(this.buf[this.off + i]);
      if (b < 0x80) {
        if (i == 9 && b > 1) {
          this.fail(WireError.Malformed);
          return 0;
        }
        this.off += i + 1;
        return x | (<u64>b << s);
      }
      x |= (<u64>(b & 0x7f)) << s;
      s += 7;
    }
    this.fail(WireError.Truncated);
    return 0;
  }

  /** A uvarint that must fit in 32 bits. */
  u32(): u32 {
    const v = this.uvarint();
    if (v > <u64>u32.MAX_VALUE) {
      this.fail(WireError.Malformed);
      return 0;
    }
    return <u32>v;
  }

  /** A uvarint that must fit in 16 bits. */
  u16(): u16 {
    const v = this.uvarint();
    if (v > <u64>u16.MAX_VALUE) {
      this.fail(WireError.Malformed);
      return 0;
    }
    return <u16>v;
  }

  /** A zig-zag varint. */
  varint(): i64 {
    const u = this.uvarint();
    return <i64>(u >> 1) ^ -(<i64>(u & 1));
  }

  f64(): f64 {
    if (this.remaining < 8) {
      this.fail(WireError.Truncated);
      return 0;
    }
    const v = reinterpret<f64>(load<u64>(this.buf.dataStart + <usize>this.off));
    this.off += 8;
    return v;
  }

  /** A list count: at most MAX_COUNT, and no more elements of minSize
   *  bytes than the bytes left can hold. */
  count(minSize: i32): i32 {
    const n = this.uvarint();
    if (this.failed) return 0;
    if (minSize < 1) minSize = 1;
    if (n > MAX_COUNT || n * <u64>minSize > <u64>this.remaining) {
      this.fail(WireError.Malformed);
      return 0;
    }
    return <i32>n;
  }

  /** A bytes field, copied (it never aliases the message). */
  bytesField(): Uint8Array {
    const n = this.uvarint();
    if (this.failed) return new Uint8Array(0);
    if (n > <u64>this.remaining) {
      this.fail(WireError.Truncated);
      return new Uint8Array(0);
    }
    const b = this.buf.slice(this.off, this.off + <i32>n);
    this.off += <i32>n;
    return b;
  }

  /** A string field as text. Invalid UTF-8 is replaced by U+FFFD; check
   *  identifiers with checkID on the bytes (Decoder.id) instead. */
  str(): string {
    const b = this.bytesField();
    return String.UTF8.decodeUnsafe(b.dataStart, b.length);
  }

  /** An identifier (agent ID, alert ID, metric or label name): a string
   *  checked on its bytes by the rules of section 10.2. */
  id(what: string): string {
    const b = this.bytesField();
    if (this.invalid === null && !this.failed) this.invalid = checkIDBytes(what, b);
    return String.UTF8.decodeUnsafe(b.dataStart, b.length);
  }

  /** A time in Unix nanoseconds; 0 is unset. */
  time(): i64 {
    return this.varint();
  }

  /** The bytes left, copied; the message is then read whole. */
  rest(): Uint8Array {
    const b = this.buf.slice(this.off);
    this.off = this.buf.length;
    return b;
  }
}

/** Why an identifier is invalid (section 10.2), or null when it is valid.
 *  `what` names it in the message: "agent id", "label name". */
export function checkIDBytes(what: string, b: Uint8Array): string | null {
  const n = b.length;
  if (n == 0) return what + " is empty";
  if (n > MAX_ID_LENGTH) return what + " is longer than " + MAX_ID_LENGTH.toString() + " bytes";
  if (!validUTF8(b)) return what + " is not valid UTF-8";
  for (let i = 0; i < n; i++) {
    if (unchecked(b[i]) == 0) return what + " contains a NUL byte";
  }
  return null;
}

/** checkIDBytes on a string's UTF-8 encoding. */
export function checkID(what: string, s: string): string | null {
  return checkIDBytes(what, utf8(s));
}

/** The UTF-8 encoding of s. */
export function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

/** The text of UTF-8 bytes (invalid sequences become U+FFFD). */
export function text(b: Uint8Array): string {
  return String.UTF8.decodeUnsafe(b.dataStart, b.length);
}

/** Whether b is valid UTF-8 as Go's unicode/utf8.Valid defines it: no
 *  overlong forms, no surrogates, nothing above U+10FFFF. */
export function validUTF8(b: Uint8Array): bool {
  const n = b.length;
  let i = 0;
  while (i < n) {
    const c = <u32>unchecked(b[i]);
    if (c < 0x80) {
      i++;
      continue;
    }
    let size = 0;
    let lo: u32 = 0x80;
    let hi: u32 = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      size = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      size = 3;
      if (c == 0xe0) lo = 0xa0;
      else if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      size = 4;
      if (c == 0xf0) lo = 0x90;
      else if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (i + size > n) return false;
    const c1 = <u32>unchecked(b[i + 1]);
    if (c1 < lo || c1 > hi) return false;
    for (let k = 2; k < size; k++) {
      const ck = <u32>unchecked(b[i + k]);
      if (ck < 0x80 || ck > 0xbf) return false;
    }
    i += size;
  }
  return true;
}

/** Compares byte strings in ascending byte order: <0, 0 or >0. */
export function compareBytes(a: Uint8Array, b: Uint8Array): i32 {
  const n = min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = <i32>unchecked(a[i]) - <i32>unchecked(b[i]);
    if (d != 0) return d;
  }
  return a.length - b.length;
}

/** Whether two byte strings are equal. */
export function equalBytes(a: Uint8Array, b: Uint8Array): bool {
  return compareBytes(a, b) == 0;
}
