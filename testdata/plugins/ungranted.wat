;; Build: wat2wasm ungranted.wat -o ungranted.wasm   (or ./build.sh for every fixture)
;;
;; ungranted: a complete, valid plugin that needs the kv capability: it
;; imports storagehost_kv.call and declares "kv" in its metadata. It loads
;; with the default grant; opened with Capabilities [log] it must fail with
;; host.ErrIncompatible naming "kv".
(module
  (import "storagehost_kv" "call"
    (func $kv_call (param $req_ptr i32) (param $req_len i32)
                   (param $out_ptr i32) (param $out_cap i32) (result i32)))

  (memory (export "memory") 1)

  ;; Metadata, 23 bytes: abi 1.0, name "ungranted", version "1.0.0",
  ;; features 4 (agent_states), capabilities ["kv"].
  (data (i32.const 0) "\01\00" "\09ungranted" "\051.0.0" "\04" "\01" "\02kv")
  ;; The OK response.
  (data (i32.const 32) "\00")

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 23)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (i32.const 1024))

  ;; Answers OK to everything; it is never asked for more than configure
  ;; and ping.
  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (call $pack (i32.const 32) (i32.const 1)))
)
