;; minimal.wat: the smallest storage-host plugin, in raw WebAssembly text.
;; It speaks ABI 1.0, imports nothing and advertises no features, so the
;; host sends it only OpPing and OpConfigure; it answers both with OK and
;; anything else with UNSUPPORTED.
;;
;; Build: wat2wasm --debug-names minimal.wat -o minimal.wasm
;; (--debug-names keeps the $names, so that a trap's stack names
;; functions, not only their numbers)
(module
  (memory (export "memory") 1)

  ;; Metadata, 18 bytes: abi major 1, minor 0, name "minimal",
  ;; version "0.1.0", features 0, no capabilities.
  (data (i32.const 0) "\01\00\07minimal\050.1.0\00\00")
  ;; Responses: OK with an empty body (1 byte), and UNSUPPORTED (5)
  ;; with a message (1 + 18 bytes).
  (data (i32.const 32) "\00")
  (data (i32.const 33) "\05op not implemented")

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x0001_0000))                     ;; 1 << 16 | 0

  (func (export "storage_metadata") (result i64)
    (i64.const 18))                              ;; ptr 0 << 32 | len 18

  ;; Requests go to the pages after the first; grow memory to hold size
  ;; bytes there, and trap if it cannot.
  (func (export "storage_reserve") (param $size i32) (result i32)
    (local $need i32)
    (if (i32.gt_u (local.get $size) (i32.const 0xfffe_0000))
      (then unreachable))                        ;; more than 4 GiB with page 0
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

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (if (result i64)
      (i32.or (i32.eq (local.get $op) (i32.const 1))       ;; OpPing
              (i32.eq (local.get $op) (i32.const 2)))      ;; OpConfigure
      (then (i64.const 0x0000_0020_0000_0001))             ;; ptr 32, len 1
      (else (i64.const 0x0000_0021_0000_0013)))))          ;; ptr 33, len 19
