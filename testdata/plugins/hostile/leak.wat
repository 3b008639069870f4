;; Build: wat2wasm leak.wat -o leak.wasm   (or ../build.sh for every fixture)
;;
;; leak: a hostile plugin that leaks 16 pages (1 MiB) of memory on every
;; get, and never reuses them. After enough calls an instance reaches
;; Limits.MemoryPages, its memory.grow fails and it traps, as a Go guest
;; out of memory does; the host replaces it with a fresh, small instance.
;;
;; Features: agent_states; capabilities: none.
;;   get agent state  memory.grow(16), trapping if refused; then answer OK
;;                    with the AgentState {agent_id "leak", version =
;;                    memory.size in pages}, so a test sees the growth
;;   ping, configure  OK
;;   anything else    unsupported
(module
  (memory (export "memory") 1)

  ;; Metadata, 15 bytes: abi 1.0, name "leak", version "1.0.0",
  ;; features 4 (agent_states), no capabilities.
  (data (i32.const 0x000) "\01\00" "\04leak" "\051.0.0" "\04" "\00")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x080) "\05" "unsupported op")
  ;; The start of the get answer, 7 bytes: OK, agent_id "leak", empty state;
  ;; the version, updated_at 0 and expires_at 0 are appended.
  (data (i32.const 0x100) "\00" "\04leak" "\00")

  ;; Requests go to 0x1000, in the first page; they are never read.
  (global $REQ_BASE i32 (i32.const 0x1000))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; Writes $v as a uvarint at $dst; returns its length.
  (func $uvarint (param $v i32) (param $dst i32) (result i32)
    (local $n i32)
    (loop $more
      (if (i32.ge_u (local.get $v) (i32.const 0x80))
        (then
          (i32.store8 (i32.add (local.get $dst) (local.get $n))
            (i32.or (local.get $v) (i32.const 0x80)))
          (local.set $v (i32.shr_u (local.get $v) (i32.const 7)))
          (local.set $n (i32.add (local.get $n) (i32.const 1)))
          (br $more))))
    (i32.store8 (i32.add (local.get $dst) (local.get $n)) (local.get $v))
    (i32.add (local.get $n) (i32.const 1)))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 15)))

  ;; The host's requests here are a few bytes: the first page holds them.
  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0xf000))
      (then unreachable))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $n i32)
    ;; OpPing (1), OpConfigure (2)
    (if (i32.or (i32.eq (local.get $op) (i32.const 1)) (i32.eq (local.get $op) (i32.const 2)))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    ;; OpGetAgentState (31)
    (if (i32.eq (local.get $op) (i32.const 31))
      (then
        (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1))
          (then unreachable))
        (local.set $n (i32.add (i32.const 7)
          (call $uvarint (memory.size) (i32.const 0x107))))
        (i32.store16 (i32.add (i32.const 0x100) (local.get $n)) (i32.const 0))
        (return (call $pack (i32.const 0x100) (i32.add (local.get $n) (i32.const 2))))))
    (call $pack (i32.const 0x080) (i32.const 15)))
)
