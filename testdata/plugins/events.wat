;; Build: wat2wasm events.wat -o events.wasm
;;
;; events.wat: a plugin that publishes events of its own through the
;; events capability (ABI 1.2). It advertises agent_states, and an
;; OpPutAgentState makes it publish the state document it was sent, taken
;; as an encoded PluginEvent, and answer with the status publish returned:
;; on OK a fixed AgentState (agent "a", version 1), otherwise that status
;; with the message "publish". host/events_capability_test.go drives it.
;;
;; Build: wat2wasm events.wat -o events.wasm
(module
  (import "storagehost_events" "publish" (func $publish (param i32 i32) (result i32)))
  (memory (export "memory") 1)

  ;; Metadata, 24 bytes: abi 1.2, name "events", version "0.1.0",
  ;; features 0x04 (agent_states), capabilities ["events"].
  (data (i32.const 0) "\01\02\06events\050.1.0\04\01\06events")
  ;; Responses: OK (configure, ping), 1 byte; OK with the AgentState
  ;; agent "a", no state, version 1, times unset, 7 bytes; and an error
  ;; body "publish" written after the status byte at 48.
  (data (i32.const 32) "\00")
  (data (i32.const 40) "\00\01a\00\01\00\00")
  (data (i32.const 49) "publish")
  (data (i32.const 64) "\05op not implemented")

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x0001_0002))

  (func (export "storage_metadata") (result i64)
    (i64.const 24))

  ;; Requests go to the pages after the first, as in minimal.wat.
  (func (export "storage_reserve") (param $size i32) (result i32)
    (local $need i32)
    (if (i32.gt_u (local.get $size) (i32.const 0xfffe_0000))
      (then unreachable))
    (local.set $need
      (i32.sub
        (i32.add (i32.const 1)
          (i32.shr_u (i32.add (local.get $size) (i32.const 0xffff)) (i32.const 16)))
        (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then
        (if (i32.eq (memory.grow (local.get $need)) (i32.const -1))
          (then unreachable))))
    (i32.const 0x1_0000))

  ;; $uvarint decodes the LEB128 at $p into the global $val and returns
  ;; the address after it.
  (global $val (mut i32) (i32.const 0))
  (func $uvarint (param $p i32) (result i32)
    (local $b i32) (local $shift i32)
    (global.set $val (i32.const 0))
    (loop $more
      (local.set $b (i32.load8_u (local.get $p)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (global.set $val
        (i32.or (global.get $val)
          (i32.shl (i32.and (local.get $b) (i32.const 0x7f)) (local.get $shift))))
      (local.set $shift (i32.add (local.get $shift) (i32.const 7)))
      (br_if $more (i32.and (local.get $b) (i32.const 0x80))))
    (local.get $p))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $p i32) (local $status i32)
    (if (i32.or (i32.eq (local.get $op) (i32.const 1))
                (i32.eq (local.get $op) (i32.const 2)))
      (then (return (i64.const 0x0000_0020_0000_0001))))
    (if (i32.ne (local.get $op) (i32.const 30))              ;; OpPutAgentState
      (then (return (i64.const 0x0000_0040_0000_0013))))
    ;; Skip agent_id, then publish the state bytes.
    (local.set $p (call $uvarint (i32.const 0x1_0000)))
    (local.set $p (call $uvarint (i32.add (local.get $p) (global.get $val))))
    (local.set $status (call $publish (local.get $p) (global.get $val)))
    (if (i32.eqz (local.get $status))
      (then (return (i64.const 0x0000_0028_0000_0007))))
    (i32.store8 (i32.const 48) (local.get $status))
    (i64.const 0x0000_0030_0000_0008))
)
