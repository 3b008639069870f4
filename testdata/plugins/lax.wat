;; Build: wat2wasm lax.wat -o lax.wasm   (or ./build.sh for every fixture)
;;
;; lax: a plugin that reads none of its requests and answers every op OK
;; with an empty body, so it skips every rule of the ABI that says what a
;; plugin must refuse. The conformance suite's Protocol rules, and
;; `storage-host plugin test`, must fail it.
;;
;; Features: agent_states only; capabilities: none.
(module
  (memory (export "memory") 1)

  ;; Metadata, 14 bytes: abi 1.0, name "lax", version "1.0.0",
  ;; features 4 (agent_states), no capabilities.
  (data (i32.const 0) "\01\00" "\03lax" "\051.0.0" "\04" "\00")
  ;; The OK response: one status byte.
  (data (i32.const 16) "\00")

  ;; Requests are written at 1024 and never read.
  (global $REQ_BASE i32 (i32.const 1024))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 14)))

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
    (call $pack (i32.const 16) (i32.const 1)))
)
