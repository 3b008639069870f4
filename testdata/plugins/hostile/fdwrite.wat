;; Build: wat2wasm fdwrite.wat -o fdwrite.wasm   (or ../build.sh for every fixture)
;;
;; fdwrite: a hostile plugin whose single WASI fd_write asks the host to
;; read far more than any log could hold: 10 000 iovecs, each over the same
;; 32 MiB region (320 GiB in all), or a million empty iovecs. The host
;; takes at most Limits.MaxLogBytesPerCall of it, within the call's
;; deadline, and answers the rest with an error.
;;
;; Features: agent_states; capabilities: none (WASI needs no grant).
;; storage_call(get agent state), by the first byte of the agent ID:
;;   'o'  fd_write(stdout) of 10 000 iovecs [0x20000, +32 MiB)
;;   'e'  the same on stderr
;;   'z'  fd_write(stdout) of 1 000 000 empty iovecs
;;   'a'  'o' 1000 times over
;; then answers OK with the AgentState {agent_id: the one asked for, state: the last
;; fd_write's errno (u32 LE) then its count of bytes written (u32 LE)}.
;; Ping and configure are OK; any other op is unsupported.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param $fd i32) (param $iovs i32) (param $iovs_len i32)
                    (param $nwritten i32) (result i32)))

  ;; 514 pages: 128 KiB, then the 32 MiB region.
  (memory (export "memory") 514)

  ;; Metadata, 18 bytes: abi 1.0, name "fdwrite", version "1.0.0",
  ;; features 4 (agent_states), no capabilities.
  (data (i32.const 0x000) "\01\00" "\07fdwrite" "\051.0.0" "\04" "\00")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; OK with the AgentState {agent_id "x", state of 8 bytes (filled in at
  ;; 0x083), version 0, times unset}, 15 bytes.
  (data (i32.const 0x080) "\00" "\01x" "\08" "\00\00\00\00\00\00\00\00" "\00" "\00" "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x0a0) "\05" "unsupported op")

  (global $REQ_BASE i32 (i32.const 0x1000))
  (global $NWRITTEN i32 (i32.const 0x100))
  ;; 10 000 iovecs of 8 bytes: [0x4000, 0x17880).
  (global $IOVS i32 (i32.const 0x4000))
  ;; The region, zeros: as iovecs, a million {0, 0}.
  (global $REGION i32 (i32.const 0x20000))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; Fills the 10 000 iovecs, each the whole region.
  (func $fill
    (local $i i32)
    (loop $more
      (i32.store (i32.add (global.get $IOVS) (i32.shl (local.get $i) (i32.const 3)))
                 (global.get $REGION))
      (i32.store (i32.add (global.get $IOVS) (i32.add (i32.shl (local.get $i) (i32.const 3)) (i32.const 4)))
                 (i32.const 0x2000000))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 10000)))))

  ;; One fd_write; its errno and count go to the answer's state.
  (func $write (param $fd i32) (param $iovs i32) (param $n i32)
    (i32.store (global.get $NWRITTEN) (i32.const 0))
    (i32.store (i32.const 0x084) (call $fd_write (local.get $fd) (local.get $iovs) (local.get $n) (global.get $NWRITTEN)))
    (i32.store (i32.const 0x088) (i32.load (global.get $NWRITTEN))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 18)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x3000))
      (then unreachable))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $sel i32) (local $i i32)
    ;; OpPing (1), OpConfigure (2)
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    (if (i32.ne (local.get $op) (i32.const 31)) ;; OpGetAgentState
      (then (return (call $pack (i32.const 0x0a0) (i32.const 15)))))
    ;; The request is the agent ID, a string.
    (local.set $sel (i32.load8_u (i32.add (global.get $REQ_BASE) (i32.const 1))))
    (if (i32.eq (local.get $sel) (i32.const 0x6f)) ;; 'o'
      (then
        (call $fill)
        (call $write (i32.const 1) (global.get $IOVS) (i32.const 10000))))
    (if (i32.eq (local.get $sel) (i32.const 0x65)) ;; 'e'
      (then
        (call $fill)
        (call $write (i32.const 2) (global.get $IOVS) (i32.const 10000))))
    (if (i32.eq (local.get $sel) (i32.const 0x7a)) ;; 'z'
      (then
        (call $write (i32.const 1) (global.get $REGION) (i32.const 1000000))))
    (if (i32.eq (local.get $sel) (i32.const 0x61)) ;; 'a'
      (then
        (call $fill)
        (local.set $i (i32.const 1000))
        (loop $more
          (call $write (i32.const 1) (global.get $IOVS) (i32.const 10000))
          (local.set $i (i32.sub (local.get $i) (i32.const 1)))
          (br_if $more (local.get $i)))))
    ;; The answer is the state of the agent asked for: its one-byte ID.
    (i32.store8 (i32.const 0x082) (local.get $sel))
    (call $pack (i32.const 0x080) (i32.const 15)))
)
