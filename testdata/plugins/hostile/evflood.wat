;; Build: wat2wasm evflood.wat -o evflood.wasm   (or ../build.sh for every fixture)
;;
;; evflood: a hostile plugin that floods the backend's change feed through
;; storagehost_events.publish (ABI 1.2): 10 000 events in one call, and
;; events of 32 MiB that no check can pass. The host takes at most
;; Limits.MaxEventsPerCall events a call (and 1000 a second), and refuses
;; an event longer than any valid one with LIMIT before decoding it.
;;
;; Features: agent_states; capabilities: events.
;; storage_call(get agent state), by the first byte of the agent ID:
;;   'p'  10 000 x publish {kind "k", op "o"}
;;   'L'  10 x publish of 32 MiB: a kind of 32 MiB of zeros
;; then answers OK with the AgentState {agent_id: the one asked for, state: the last
;; publish's status (u32 LE) then the count of publishes answered OK
;; (u32 LE)}.
;; Ping and configure are OK; any other op is unsupported.
(module
  (import "storagehost_events" "publish" (func $publish (param i32 i32) (result i32)))

  ;; 514 pages: 128 KiB, then the 32 MiB event.
  (memory (export "memory") 514)

  ;; Metadata, 25 bytes: abi 1.2, name "evflood", version "1.0.0",
  ;; features 4 (agent_states), capabilities [events].
  (data (i32.const 0x000) "\01\02" "\07evflood" "\051.0.0" "\04" "\01" "\06events")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; OK with the AgentState {agent_id "x", state of 8 bytes (filled in at
  ;; 0x084), version 0, times unset}, 15 bytes.
  (data (i32.const 0x080) "\00" "\01x" "\08" "\00\00\00\00\00\00\00\00" "\00" "\00" "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x0a0) "\05" "unsupported op")
  ;; The event {kind "k", op "o"}, 7 bytes.
  (data (i32.const 0x100) "\01k" "\01o" "\00" "\00" "\00")
  ;; The event of 32 MiB: a kind's length, 33 554 428 (4-byte uvarint),
  ;; then that many zeros to the end of memory.
  (data (i32.const 0x20000) "\fc\ff\ff\0f")

  (global $REQ_BASE i32 (i32.const 0x1000))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; $n publishes of the event at ($ptr, $len); the last status and the
  ;; count of OK go to the answer's state.
  (func $flood (param $ptr i32) (param $len i32) (param $n i32)
    (local $st i32) (local $ok i32)
    (loop $more
      (local.set $st (call $publish (local.get $ptr) (local.get $len)))
      (if (i32.eqz (local.get $st))
        (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $more (local.get $n)))
    (i32.store (i32.const 0x084) (local.get $st))
    (i32.store (i32.const 0x088) (local.get $ok)))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x0001_0002))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 25)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x3000))
      (then unreachable))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $sel i32)
    ;; OpPing (1), OpConfigure (2)
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    (if (i32.ne (local.get $op) (i32.const 31)) ;; OpGetAgentState
      (then (return (call $pack (i32.const 0x0a0) (i32.const 15)))))
    ;; The request is the agent ID, a string.
    (local.set $sel (i32.load8_u (i32.add (global.get $REQ_BASE) (i32.const 1))))
    (if (i32.eq (local.get $sel) (i32.const 0x70)) ;; 'p'
      (then (call $flood (i32.const 0x100) (i32.const 7) (i32.const 10000))))
    (if (i32.eq (local.get $sel) (i32.const 0x4c)) ;; 'L'
      (then (call $flood (i32.const 0x20000) (i32.const 0x2000000) (i32.const 10))))
    ;; The answer is the state of the agent asked for: its one-byte ID.
    (i32.store8 (i32.const 0x082) (local.get $sel))
    (call $pack (i32.const 0x080) (i32.const 15)))
)
