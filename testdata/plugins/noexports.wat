;; Build: wat2wasm noexports.wat -o noexports.wasm   (or ./build.sh for every fixture)
;;
;; noexports: a module with a memory and nothing else. It has no
;; storage_abi_version, so it is not a storage plugin: loading fails with
;; host.ErrIncompatible naming the missing export.
(module
  (memory (export "memory") 1)
)
