;; Build: wat2wasm migmany.wat -o migmany.wasm
;; migmany: a postgres plugin (ABI 1.5) whose storage_migrations answers
;; 100 000 valid migrations (versions 1, 2, 3 ..., empty SQL), built in
;; its own memory at each call: more than a Migrations may hold
;; (abi.MaxMigrations), refused before it is decoded. Its other exports do
;; nothing useful.
(module
  (memory (export "memory") 32)
  ;; Metadata: ABI 1.5, name "migmany", version "1", features 4
  ;; (agent_states), capabilities [postgres].
  (data (i32.const 0x000) "\01\05" "\07migmany" "\011" "\04" "\01" "\08postgres")
  (data (i32.const 0x040) "\00")

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; $uvarint writes v as a uvarint at p and answers the byte after it.
  (func $uvarint (param $p i32) (param $v i32) (result i32)
    (loop $more
      (if (i32.ge_u (local.get $v) (i32.const 0x80))
        (then
          (i32.store8 (local.get $p) (i32.or (local.get $v) (i32.const 0x80)))
          (local.set $v (i32.shr_u (local.get $v) (i32.const 7)))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br $more))))
    (i32.store8 (local.get $p) (local.get $v))
    (i32.add (local.get $p) (i32.const 1)))

  (func (export "storage_abi_version") (result i32) (i32.const 0x00010005))
  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 23)))
  (func (export "storage_reserve") (param $size i32) (result i32) (i32.const 0x1000))
  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (call $pack (i32.const 0x040) (i32.const 1)))

  (func (export "storage_migrations") (result i64)
    (local $p i32) (local $v i32)
    (local.set $p (call $uvarint (i32.const 0x10000) (i32.const 100000)))
    (local.set $v (i32.const 1))
    (loop $each
      (local.set $p (call $uvarint (local.get $p) (local.get $v)))
      (i32.store8 (local.get $p) (i32.const 0)) ;; the SQL: empty
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (local.set $v (i32.add (local.get $v) (i32.const 1)))
      (br_if $each (i32.le_u (local.get $v) (i32.const 100000))))
    (call $pack (i32.const 0x10000) (i32.sub (local.get $p) (i32.const 0x10000))))
)
