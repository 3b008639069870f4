;; Build: wat2wasm trap.wat -o trap.wasm   (or ./build.sh for every fixture)
;;
;; trap: a minimal valid plugin whose storage_call executes `unreachable`
;; when asked to ping. The host must discard the trapping instance, answer
;; StatusInternal, and serve the next call from a fresh instance.
;;
;; Features: agent_states only; capabilities: none.
;; Ops: configure -> OK (it must succeed, or no instance could be created);
;;      ping      -> trap;
;;      any other -> StatusUnsupported with a message, answered by the plugin
;;                   itself, so a test can tell a live instance answered.
(module
  (memory (export "memory") 1)

  ;; Metadata, 15 bytes: abi 1.0, name "trap", version "1.0.0",
  ;; features 4 (agent_states), no capabilities.
  (data (i32.const 0) "\01\00" "\04trap" "\051.0.0" "\04" "\00")
  ;; The OK response: one status byte.
  (data (i32.const 16) "\00")
  ;; The unsupported response, 62 bytes: status 5, then the message.
  (data (i32.const 32) "\05" "trap: ping traps; every other op but configure is unsupported")

  ;; Requests are written at 1024 and never read.
  (global $REQ_BASE i32 (i32.const 1024))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 15)))

  ;; The region must hold $size bytes even though they are ignored.
  (func (export "storage_reserve") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.add (i32.shr_u (i32.add (local.get $size) (global.get $REQ_BASE))
                                          (i32.const 16))
                               (i32.const 1)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then unreachable))))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    ;; OpPing (1): trap.
    (if (i32.eq (local.get $op) (i32.const 1))
      (then unreachable))
    ;; OpConfigure (2): OK, whatever the options.
    (if (i32.eq (local.get $op) (i32.const 2))
      (then (return (call $pack (i32.const 16) (i32.const 1)))))
    (call $pack (i32.const 32) (i32.const 62)))
)
