;; Build: wat2wasm recursion.wat -o recursion.wasm   (or ../build.sh for every fixture)
;;
;; recursion: a hostile plugin that recurses without end. wazero's call
;; stack is bounded: the call traps with a stack overflow, the host answers
;; StatusInternal and replaces the instance.
;;
;; Features: agent_states; capabilities: none.
;;   get agent state  recurse forever (not a tail call: the result of each
;;                    call is used, so every frame stays)
;;   delete agent state
;;                    recurse 40 calls deep, then trap (unreachable): a
;;                    trap whose stack trace has many frames
;;   ping, configure  OK
;;   anything else    unsupported
(module
  (memory (export "memory") 1)

  ;; Metadata, 20 bytes: abi 1.0, name "recursion", version "1.0.0",
  ;; features 4 (agent_states), no capabilities.
  (data (i32.const 0x000) "\01\00" "\09recursion" "\051.0.0" "\04" "\00")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x080) "\05" "unsupported op")

  (global $REQ_BASE i32 (i32.const 0x1000))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func $deeper (param $n i32) (result i32)
    (i32.add (call $deeper (i32.add (local.get $n) (i32.const 1)))
             (local.get $n)))

  (func $trapAt (param $n i32)
    (if (i32.eqz (local.get $n)) (then unreachable))
    (call $trapAt (i32.sub (local.get $n) (i32.const 1))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 20)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0xf000))
      (then unreachable))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    ;; OpPing (1), OpConfigure (2)
    (if (i32.or (i32.eq (local.get $op) (i32.const 1)) (i32.eq (local.get $op) (i32.const 2)))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    ;; OpGetAgentState (31)
    (if (i32.eq (local.get $op) (i32.const 31))
      (then (drop (call $deeper (i32.const 0)))))
    ;; OpDeleteAgentState (32)
    (if (i32.eq (local.get $op) (i32.const 32))
      (then (call $trapAt (i32.const 40))))
    (call $pack (i32.const 0x080) (i32.const 15)))
)
