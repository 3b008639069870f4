;; Build: wat2wasm badregion.wat -o badregion.wasm   (or ../build.sh for every fixture)
;;
;; badregion: a hostile plugin that hands the host regions it must not use:
;; pointers past its memory, absurd lengths, ptr + len wrapping past 2^32,
;; and a well-formed but gigantic response. The host must bounds-check every
;; region it reads or writes and refuse, never read or write out of bounds.
;;
;; Features: agent_states; capabilities: clock.
;; storage_metadata, by the host clock (metadata is read once, at Open):
;;   -1 ns  ptr 0x7fff0000 (past memory), len 26
;;   -2 ns  ptr 0, len 0xffffffff
;;   -3 ns  ptr 0xfffffff0, len 0x20 (ptr + len wraps)
;;   -4 ns  ptr 65537 (past the first page), len 0
;;   else   the metadata: ptr 0, len 26
;; storage_reserve(size):
;;   size >= 64 KiB  0x7fff0000, past memory
;;   size >= 32 KiB  0xfffffff0, so that ptr + size wraps
;;   size >= 16 KiB  256 bytes before the end of memory: starts inside, ends outside
;;   else            0x1000
;; storage_call(get agent state), by the first byte of the agent ID:
;;   'p'  ptr 0x7fff0000, len 1
;;   'l'  ptr 0, len 0xffffffff
;;   'o'  ptr 0xfffffff0, len 0x20
;;   'm'  ptr 0, len one byte more than its memory holds
;;   'e'  ptr 65537, len 0
;;   'g'  a valid AgentState response of exactly 2 MiB (agent_id "g", a
;;        state of 2 097 143 zero bytes), after growing memory to 33 pages
;; Ping and configure are OK; any other op is unsupported.
(module
  (import "storagehost_clock" "now" (func $clock_now (result i64)))

  (memory (export "memory") 1)

  ;; Metadata, 26 bytes: abi 1.0, name "badregion", version "1.0.0",
  ;; features 4 (agent_states), capabilities [clock].
  (data (i32.const 0x000) "\01\00" "\09badregion" "\051.0.0" "\04" "\01" "\05clock")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x080) "\05" "unsupported op")
  ;; The head of the 2 MiB answer: OK, agent_id "g", then the state's
  ;; length 2 097 143 as a uvarint (f7 ff 7f). The state and the three
  ;; zero bytes after it (version, updated_at, expires_at) are fresh memory.
  (data (i32.const 0x0c0) "\00" "\01g" "\f7\ff\7f")

  (global $REQ_BASE i32 (i32.const 0x1000))
  (global $BIG i32 (i32.const 0x10000))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (local $t i64)
    (local.set $t (call $clock_now))
    (if (i64.eq (local.get $t) (i64.const -1))
      (then (return (call $pack (i32.const 0x7fff0000) (i32.const 26)))))
    (if (i64.eq (local.get $t) (i64.const -2))
      (then (return (call $pack (i32.const 0) (i32.const 0xffffffff)))))
    (if (i64.eq (local.get $t) (i64.const -3))
      (then (return (call $pack (i32.const 0xfffffff0) (i32.const 0x20)))))
    (if (i64.eq (local.get $t) (i64.const -4))
      (then (return (call $pack (i32.const 0x10001) (i32.const 0)))))
    (call $pack (i32.const 0) (i32.const 26)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.ge_u (local.get $size) (i32.const 0x10000))
      (then (return (i32.const 0x7fff0000))))
    (if (i32.ge_u (local.get $size) (i32.const 0x8000))
      (then (return (i32.const 0xfffffff0))))
    (if (i32.ge_u (local.get $size) (i32.const 0x4000))
      (then (return (i32.sub (i32.shl (memory.size) (i32.const 16)) (i32.const 256)))))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $sel i32)
    ;; OpPing (1), OpConfigure (2)
    (if (i32.or (i32.eq (local.get $op) (i32.const 1)) (i32.eq (local.get $op) (i32.const 2)))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    ;; OpGetAgentState (31): the request is the agent ID, a string.
    (if (i32.eq (local.get $op) (i32.const 31))
      (then
        (local.set $sel (i32.load8_u (i32.add (global.get $REQ_BASE) (i32.const 1))))
        (if (i32.eq (local.get $sel) (i32.const 0x70)) ;; 'p'
          (then (return (call $pack (i32.const 0x7fff0000) (i32.const 1)))))
        (if (i32.eq (local.get $sel) (i32.const 0x6c)) ;; 'l'
          (then (return (call $pack (i32.const 0) (i32.const 0xffffffff)))))
        (if (i32.eq (local.get $sel) (i32.const 0x6f)) ;; 'o'
          (then (return (call $pack (i32.const 0xfffffff0) (i32.const 0x20)))))
        (if (i32.eq (local.get $sel) (i32.const 0x6d)) ;; 'm'
          (then (return (call $pack (i32.const 0)
                                    (i32.add (i32.shl (memory.size) (i32.const 16)) (i32.const 1))))))
        (if (i32.eq (local.get $sel) (i32.const 0x65)) ;; 'e'
          (then (return (call $pack (i32.const 0x10001) (i32.const 0)))))
        (if (i32.eq (local.get $sel) (i32.const 0x67)) ;; 'g'
          (then
            (if (i32.lt_u (memory.size) (i32.const 33))
              (then
                (if (i32.eq (memory.grow (i32.sub (i32.const 33) (memory.size))) (i32.const -1))
                  (then unreachable))))
            (memory.copy (global.get $BIG) (i32.const 0x0c0) (i32.const 6))
            (return (call $pack (global.get $BIG) (i32.const 0x200000)))))))
    (call $pack (i32.const 0x080) (i32.const 15)))
)
