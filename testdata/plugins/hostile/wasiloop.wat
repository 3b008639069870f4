;; Build: wat2wasm wasiloop.wat -o wasiloop.wasm   (or ../build.sh for every fixture)
;;
;; wasiloop: a hostile plugin that never returns, spinning on a WASI call
;; whose work grows with what it asks: each turn of its loop is a few
;; instructions around one call that costs the host much more. What
;; stops it in time is the WASI function's own check of the call's
;; deadline (random_get, poll_oneoff), or the fuel every call to an
;; import costs (wasmcheck.ImportCallCost: fd_read, path_open).
;;
;; Features: agent_states; capabilities: clock (WASI needs no grant).
;; storage_call(get agent state), by the first byte of the agent ID:
;;   'r'  random_get of 32 MiB, forever
;;   'p'  poll_oneoff of 2 000 000 subscriptions (fd_write on stdout), forever
;;   'f'  fd_read of stdin over 2 000 000 empty iovecs, forever
;;   'o'  path_open of a path of 4 MiB, forever
;;   'q'  one poll_oneoff of 2 subscriptions (a relative clock, a read of
;;        stdin), then answers OK with the AgentState {agent_id "q",
;;        state: its errno (u16 LE), its count of events (u32 LE), then
;;        the two events' errno and type (u16 LE, u8) each}
;;   'P'  one path_open of a path that runs past the end of memory, then
;;        answers OK as 'q' does (agent_id "P"), its state the errno
;;        (u16 LE) and zeros
;; host clock at -1 ns: _initialize runs the 'r' loop.
;; Ping and configure are OK; any other op is unsupported.
(module
  (import "wasi_snapshot_preview1" "random_get"
    (func $random_get (param $buf i32) (param $len i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param $in i32) (param $out i32) (param $n i32) (param $nevents i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param $fd i32) (param $iovs i32) (param $n i32) (param $nread i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param $fd i32) (param $dirflags i32) (param $path i32) (param $len i32) (param $oflags i32)
                     (param $base i64) (param $inheriting i64) (param $fdflags i32) (param $opened i32) (result i32)))
  (import "storagehost_clock" "now"
    (func $clock_now (result i64)))

  ;; 1 MiB of fixed data, then random_get's 32 MiB, which is also where
  ;; poll_oneoff's 2 000 000 subscriptions are (96 MB, zeros but for their
  ;; tag and fd), and its events, over them (whatever the events make of
  ;; the subscriptions, each call has as many): 1490 pages.
  (memory (export "memory") 1490)

  ;; Metadata, 25 bytes: abi 1.0, name "wasiloop", version "1.0.0",
  ;; features 4 (agent_states), capabilities [clock].
  (data (i32.const 0x000) "\01\00" "\08wasiloop" "\051.0.0" "\04" "\01" "\05clock")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; OK with the AgentState {agent_id "q", state of 12 bytes (filled in at
  ;; 0x084), version 0, times unset}, 19 bytes.
  (data (i32.const 0x080) "\00" "\01q" "\0c" "\00\00\00\00\00\00\00\00\00\00\00\00" "\00" "\00" "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x0c0) "\05" "unsupported op")

  (global $REQ_BASE i32 (i32.const 0x1000))
  (global $NEVENTS i32 (i32.const 0x200))
  (global $REGION i32 (i32.const 0x100000))
  (global $EVENTS i32 (i32.const 0x100000))
  (global $ONCE_EVENTS i32 (i32.const 0x400)) ;; 'q's two events

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func $random_forever
    (loop $l
      (drop (call $random_get (global.get $REGION) (i32.const 0x2000000)))
      (br $l)))

  ;; Subscriptions of 48 bytes: tag 2 (fd_write) at +8, fd 1 at +16.
  (func $poll_forever
    (local $i i32) (local $at i32)
    (loop $fill
      (local.set $at (i32.add (global.get $REGION) (i32.mul (local.get $i) (i32.const 48))))
      (i32.store8 offset=8 (local.get $at) (i32.const 2))
      (i32.store offset=16 (local.get $at) (i32.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 2000000))))
    (loop $l
      (drop (call $poll_oneoff (global.get $REGION) (global.get $EVENTS) (i32.const 2000000) (global.get $NEVENTS)))
      (br $l)))

  ;; 2 000 000 iovecs of 8 bytes, all zeros: empty (16 MB of the region).
  (func $read_forever
    (memory.fill (global.get $REGION) (i32.const 0) (i32.const 16000000))
    (loop $l
      (drop (call $fd_read (i32.const 0) (global.get $REGION) (i32.const 2000000) (global.get $NEVENTS)))
      (br $l)))

  ;; A path of 4 MiB (the region, whatever it holds) from descriptor 3.
  (func $open_forever
    (loop $l
      (drop (call $path_open (i32.const 3) (i32.const 0) (global.get $REGION) (i32.const 0x400000) (i32.const 0)
                             (i64.const 0) (i64.const 0) (i32.const 0) (global.get $NEVENTS)))
      (br $l)))

  ;; A relative clock of 1 s (tag 0, timeout at +24, flags 0 at +40),
  ;; then a read of stdin (tag 1, fd 0 at +16).
  (func $poll_once
    (local $errno i32)
    (memory.fill (global.get $REGION) (i32.const 0) (i32.const 96))
    (i64.store offset=24 (global.get $REGION) (i64.const 1000000000))
    (i32.store8 offset=56 (global.get $REGION) (i32.const 1))
    (local.set $errno
      (call $poll_oneoff (global.get $REGION) (global.get $ONCE_EVENTS) (i32.const 2) (global.get $NEVENTS)))
    (i32.store16 (i32.const 0x084) (local.get $errno))
    (i32.store (i32.const 0x086) (i32.load (global.get $NEVENTS)))
    (i32.store16 (i32.const 0x08a) (i32.load16_u offset=8 (global.get $ONCE_EVENTS)))
    (i32.store8 (i32.const 0x08c) (i32.load8_u offset=10 (global.get $ONCE_EVENTS)))
    (i32.store16 (i32.const 0x08d) (i32.load16_u offset=40 (global.get $ONCE_EVENTS)))
    (i32.store8 (i32.const 0x08f) (i32.load8_u offset=42 (global.get $ONCE_EVENTS))))

  ;; A path from the last byte of memory, of 4 GiB less one.
  (func $open_once
    (memory.fill (i32.const 0x084) (i32.const 0) (i32.const 12))
    (i32.store16 (i32.const 0x084)
      (call $path_open (i32.const 3) (i32.const 0)
                       (i32.sub (i32.mul (memory.size) (i32.const 65536)) (i32.const 1)) (i32.const 0xffffffff)
                       (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (global.get $NEVENTS))))

  (func (export "_initialize")
    (if (i64.eq (call $clock_now) (i64.const -1))
      (then (call $random_forever))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 25)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.ge_u (local.get $size) (i32.const 0x10000))
      (then unreachable))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $first i32)
    ;; OpPing (1), OpConfigure (2)
    (if (i32.or (i32.eq (local.get $op) (i32.const 1)) (i32.eq (local.get $op) (i32.const 2)))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    ;; OpGetAgentState (31): the request is the agent ID, a string
    ;; (uvarint length, then its bytes): its first byte at REQ_BASE + 1.
    (if (i32.eq (local.get $op) (i32.const 31))
      (then
        (local.set $first (i32.load8_u offset=1 (global.get $REQ_BASE)))
        (if (i32.eq (local.get $first) (i32.const 0x72)) ;; 'r'
          (then (call $random_forever)))
        (if (i32.eq (local.get $first) (i32.const 0x70)) ;; 'p'
          (then (call $poll_forever)))
        (if (i32.eq (local.get $first) (i32.const 0x66)) ;; 'f'
          (then (call $read_forever)))
        (if (i32.eq (local.get $first) (i32.const 0x6f)) ;; 'o'
          (then (call $open_forever)))
        (if (i32.eq (local.get $first) (i32.const 0x50)) ;; 'P'
          (then
            (call $open_once)
            (i32.store8 (i32.const 0x082) (local.get $first))
            (return (call $pack (i32.const 0x080) (i32.const 19)))))
        (if (i32.eq (local.get $first) (i32.const 0x71)) ;; 'q'
          (then
            (call $poll_once)
            (i32.store8 (i32.const 0x082) (local.get $first))
            (return (call $pack (i32.const 0x080) (i32.const 19)))))))
    (call $pack (i32.const 0x0c0) (i32.const 15)))
)
