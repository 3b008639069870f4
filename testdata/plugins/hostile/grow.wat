;; Build: wat2wasm grow.wat -o grow.wasm   (or ../build.sh for every fixture)
;;
;; grow: a hostile plugin that asks for all the memory it can get. Its
;; memory declares no maximum, so Limits.MemoryPages is the only bound:
;; memory.grow must return -1 there, without the host allocating more.
;;
;; Features: agent_states; capabilities: none.
;; storage_call(get agent state) by the first byte of the agent ID:
;;   'a'  memory.grow(1) until it is refused, then answer StatusLimit
;;        "grow: memory.grow(1) refused at <memory.size> pages"
;;   't'  memory.grow(1) until it is refused, then trap (as a Go guest that
;;        runs out of memory does)
;;   'h'  one memory.grow(65535) (4 GiB with the first page), then answer
;;        StatusLimit "grow: memory.grow(65535) refused at <size> pages"
;; Ping and configure are OK; any other op is unsupported.
(module
  (memory (export "memory") 1)

  ;; Metadata, 15 bytes: abi 1.0, name "grow", version "1.0.0",
  ;; features 4 (agent_states), no capabilities.
  (data (i32.const 0x000) "\01\00" "\04grow" "\051.0.0" "\04" "\00")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x080) "\05" "unsupported op")
  ;; The starts of the StatusLimit (7) answers, 33 and 37 bytes, and their end.
  (data (i32.const 0x100) "\07" "grow: memory.grow(1) refused at ")
  (data (i32.const 0x180) "\07" "grow: memory.grow(65535) refused at ")
  (data (i32.const 0x200) " pages")

  ;; Requests go to 0x1000; answers are built at 0x800.
  (global $REQ_BASE i32 (i32.const 0x1000))
  (global $OUT i32 (i32.const 0x800))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; Writes $n in decimal at $dst; returns the number of digits.
  (func $itoa (param $n i32) (param $dst i32) (result i32)
    (local $len i32) (local $t i32)
    (local.set $t (local.get $n))
    (local.set $len (i32.const 1))
    (block $counted
      (loop $count
        (br_if $counted (i32.lt_u (local.get $t) (i32.const 10)))
        (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
        (local.set $len (i32.add (local.get $len) (i32.const 1)))
        (br $count)))
    (local.set $t (local.get $len))
    (loop $digit
      (local.set $t (i32.sub (local.get $t) (i32.const 1)))
      (i32.store8 (i32.add (local.get $dst) (local.get $t))
        (i32.add (i32.const 0x30) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (local.get $t)))
    (local.get $len))

  ;; The answer: the $plen bytes at $prefix, memory.size in decimal, " pages".
  (func $report (param $prefix i32) (param $plen i32) (result i64)
    (local $n i32)
    (memory.copy (global.get $OUT) (local.get $prefix) (local.get $plen))
    (local.set $n (i32.add (local.get $plen)
      (call $itoa (memory.size) (i32.add (global.get $OUT) (local.get $plen)))))
    (memory.copy (i32.add (global.get $OUT) (local.get $n)) (i32.const 0x200) (i32.const 6))
    (call $pack (global.get $OUT) (i32.add (local.get $n) (i32.const 6))))

  (func $grow_until_refused
    (block $refused
      (loop $more
        (br_if $refused (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 15)))

  ;; The region must hold $size bytes; trap if it cannot.
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
    (local $sel i32)
    ;; OpPing (1), OpConfigure (2)
    (if (i32.or (i32.eq (local.get $op) (i32.const 1)) (i32.eq (local.get $op) (i32.const 2)))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    ;; OpGetAgentState (31): the request is the agent ID, a string.
    (if (i32.eq (local.get $op) (i32.const 31))
      (then
        (local.set $sel (i32.load8_u (i32.add (global.get $REQ_BASE) (i32.const 1))))
        (if (i32.eq (local.get $sel) (i32.const 0x61)) ;; 'a'
          (then
            (call $grow_until_refused)
            (return (call $report (i32.const 0x100) (i32.const 33)))))
        (if (i32.eq (local.get $sel) (i32.const 0x74)) ;; 't'
          (then
            (call $grow_until_refused)
            unreachable))
        (if (i32.eq (local.get $sel) (i32.const 0x68)) ;; 'h'
          (then
            (if (i32.ne (memory.grow (i32.const 65535)) (i32.const -1))
              (then unreachable))
            (return (call $report (i32.const 0x180) (i32.const 37)))))))
    (call $pack (i32.const 0x080) (i32.const 15)))
)
