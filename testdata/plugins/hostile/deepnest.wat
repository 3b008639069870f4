;; Build: wat2wasm deepnest.wat -o deepnest.wasm   (or ../build.sh for every fixture)
;;
;; deepnest: one function of 1000 locals that reads each of them inside
;; 1000 nested loops, in 7 KB. Neither its locals nor its depth is much,
;; but an optimising compiler carries every local it reads through every
;; loop around the read: wazero allocates over 200 MiB and takes seconds
;; to compile it, and both grow with locals times depth (twice each: four
;; times the memory). The host refuses it before compiling it, by its
;; locals times its depth (host/hostile_load_test.go).
(module
  (memory (export "memory") 1)
  (func (export "spin")
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop loop
    local.get 0 drop local.get 1 drop local.get 2 drop local.get 3 drop local.get 4 drop local.get 5 drop local.get 6 drop local.get 7 drop local.get 8 drop local.get 9 drop
    local.get 10 drop local.get 11 drop local.get 12 drop local.get 13 drop local.get 14 drop local.get 15 drop local.get 16 drop local.get 17 drop local.get 18 drop local.get 19 drop
    local.get 20 drop local.get 21 drop local.get 22 drop local.get 23 drop local.get 24 drop local.get 25 drop local.get 26 drop local.get 27 drop local.get 28 drop local.get 29 drop
    local.get 30 drop local.get 31 drop local.get 32 drop local.get 33 drop local.get 34 drop local.get 35 drop local.get 36 drop local.get 37 drop local.get 38 drop local.get 39 drop
    local.get 40 drop local.get 41 drop local.get 42 drop local.get 43 drop local.get 44 drop local.get 45 drop local.get 46 drop local.get 47 drop local.get 48 drop local.get 49 drop
    local.get 50 drop local.get 51 drop local.get 52 drop local.get 53 drop local.get 54 drop local.get 55 drop local.get 56 drop local.get 57 drop local.get 58 drop local.get 59 drop
    local.get 60 drop local.get 61 drop local.get 62 drop local.get 63 drop local.get 64 drop local.get 65 drop local.get 66 drop local.get 67 drop local.get 68 drop local.get 69 drop
    local.get 70 drop local.get 71 drop local.get 72 drop local.get 73 drop local.get 74 drop local.get 75 drop local.get 76 drop local.get 77 drop local.get 78 drop local.get 79 drop
    local.get 80 drop local.get 81 drop local.get 82 drop local.get 83 drop local.get 84 drop local.get 85 drop local.get 86 drop local.get 87 drop local.get 88 drop local.get 89 drop
    local.get 90 drop local.get 91 drop local.get 92 drop local.get 93 drop local.get 94 drop local.get 95 drop local.get 96 drop local.get 97 drop local.get 98 drop local.get 99 drop
    local.get 100 drop local.get 101 drop local.get 102 drop local.get 103 drop local.get 104 drop local.get 105 drop local.get 106 drop local.get 107 drop local.get 108 drop local.get 109 drop
    local.get 110 drop local.get 111 drop local.get 112 drop local.get 113 drop local.get 114 drop local.get 115 drop local.get 116 drop local.get 117 drop local.get 118 drop local.get 119 drop
    local.get 120 drop local.get 121 drop local.get 122 drop local.get 123 drop local.get 124 drop local.get 125 drop local.get 126 drop local.get 127 drop local.get 128 drop local.get 129 drop
    local.get 130 drop local.get 131 drop local.get 132 drop local.get 133 drop local.get 134 drop local.get 135 drop local.get 136 drop local.get 137 drop local.get 138 drop local.get 139 drop
    local.get 140 drop local.get 141 drop local.get 142 drop local.get 143 drop local.get 144 drop local.get 145 drop local.get 146 drop local.get 147 drop local.get 148 drop local.get 149 drop
    local.get 150 drop local.get 151 drop local.get 152 drop local.get 153 drop local.get 154 drop local.get 155 drop local.get 156 drop local.get 157 drop local.get 158 drop local.get 159 drop
    local.get 160 drop local.get 161 drop local.get 162 drop local.get 163 drop local.get 164 drop local.get 165 drop local.get 166 drop local.get 167 drop local.get 168 drop local.get 169 drop
    local.get 170 drop local.get 171 drop local.get 172 drop local.get 173 drop local.get 174 drop local.get 175 drop local.get 176 drop local.get 177 drop local.get 178 drop local.get 179 drop
    local.get 180 drop local.get 181 drop local.get 182 drop local.get 183 drop local.get 184 drop local.get 185 drop local.get 186 drop local.get 187 drop local.get 188 drop local.get 189 drop
    local.get 190 drop local.get 191 drop local.get 192 drop local.get 193 drop local.get 194 drop local.get 195 drop local.get 196 drop local.get 197 drop local.get 198 drop local.get 199 drop
    local.get 200 drop local.get 201 drop local.get 202 drop local.get 203 drop local.get 204 drop local.get 205 drop local.get 206 drop local.get 207 drop local.get 208 drop local.get 209 drop
    local.get 210 drop local.get 211 drop local.get 212 drop local.get 213 drop local.get 214 drop local.get 215 drop local.get 216 drop local.get 217 drop local.get 218 drop local.get 219 drop
    local.get 220 drop local.get 221 drop local.get 222 drop local.get 223 drop local.get 224 drop local.get 225 drop local.get 226 drop local.get 227 drop local.get 228 drop local.get 229 drop
    local.get 230 drop local.get 231 drop local.get 232 drop local.get 233 drop local.get 234 drop local.get 235 drop local.get 236 drop local.get 237 drop local.get 238 drop local.get 239 drop
    local.get 240 drop local.get 241 drop local.get 242 drop local.get 243 drop local.get 244 drop local.get 245 drop local.get 246 drop local.get 247 drop local.get 248 drop local.get 249 drop
    local.get 250 drop local.get 251 drop local.get 252 drop local.get 253 drop local.get 254 drop local.get 255 drop local.get 256 drop local.get 257 drop local.get 258 drop local.get 259 drop
    local.get 260 drop local.get 261 drop local.get 262 drop local.get 263 drop local.get 264 drop local.get 265 drop local.get 266 drop local.get 267 drop local.get 268 drop local.get 269 drop
    local.get 270 drop local.get 271 drop local.get 272 drop local.get 273 drop local.get 274 drop local.get 275 drop local.get 276 drop local.get 277 drop local.get 278 drop local.get 279 drop
    local.get 280 drop local.get 281 drop local.get 282 drop local.get 283 drop local.get 284 drop local.get 285 drop local.get 286 drop local.get 287 drop local.get 288 drop local.get 289 drop
    local.get 290 drop local.get 291 drop local.get 292 drop local.get 293 drop local.get 294 drop local.get 295 drop local.get 296 drop local.get 297 drop local.get 298 drop local.get 299 drop
    local.get 300 drop local.get 301 drop local.get 302 drop local.get 303 drop local.get 304 drop local.get 305 drop local.get 306 drop local.get 307 drop local.get 308 drop local.get 309 drop
    local.get 310 drop local.get 311 drop local.get 312 drop local.get 313 drop local.get 314 drop local.get 315 drop local.get 316 drop local.get 317 drop local.get 318 drop local.get 319 drop
    local.get 320 drop local.get 321 drop local.get 322 drop local.get 323 drop local.get 324 drop local.get 325 drop local.get 326 drop local.get 327 drop local.get 328 drop local.get 329 drop
    local.get 330 drop local.get 331 drop local.get 332 drop local.get 333 drop local.get 334 drop local.get 335 drop local.get 336 drop local.get 337 drop local.get 338 drop local.get 339 drop
    local.get 340 drop local.get 341 drop local.get 342 drop local.get 343 drop local.get 344 drop local.get 345 drop local.get 346 drop local.get 347 drop local.get 348 drop local.get 349 drop
    local.get 350 drop local.get 351 drop local.get 352 drop local.get 353 drop local.get 354 drop local.get 355 drop local.get 356 drop local.get 357 drop local.get 358 drop local.get 359 drop
    local.get 360 drop local.get 361 drop local.get 362 drop local.get 363 drop local.get 364 drop local.get 365 drop local.get 366 drop local.get 367 drop local.get 368 drop local.get 369 drop
    local.get 370 drop local.get 371 drop local.get 372 drop local.get 373 drop local.get 374 drop local.get 375 drop local.get 376 drop local.get 377 drop local.get 378 drop local.get 379 drop
    local.get 380 drop local.get 381 drop local.get 382 drop local.get 383 drop local.get 384 drop local.get 385 drop local.get 386 drop local.get 387 drop local.get 388 drop local.get 389 drop
    local.get 390 drop local.get 391 drop local.get 392 drop local.get 393 drop local.get 394 drop local.get 395 drop local.get 396 drop local.get 397 drop local.get 398 drop local.get 399 drop
    local.get 400 drop local.get 401 drop local.get 402 drop local.get 403 drop local.get 404 drop local.get 405 drop local.get 406 drop local.get 407 drop local.get 408 drop local.get 409 drop
    local.get 410 drop local.get 411 drop local.get 412 drop local.get 413 drop local.get 414 drop local.get 415 drop local.get 416 drop local.get 417 drop local.get 418 drop local.get 419 drop
    local.get 420 drop local.get 421 drop local.get 422 drop local.get 423 drop local.get 424 drop local.get 425 drop local.get 426 drop local.get 427 drop local.get 428 drop local.get 429 drop
    local.get 430 drop local.get 431 drop local.get 432 drop local.get 433 drop local.get 434 drop local.get 435 drop local.get 436 drop local.get 437 drop local.get 438 drop local.get 439 drop
    local.get 440 drop local.get 441 drop local.get 442 drop local.get 443 drop local.get 444 drop local.get 445 drop local.get 446 drop local.get 447 drop local.get 448 drop local.get 449 drop
    local.get 450 drop local.get 451 drop local.get 452 drop local.get 453 drop local.get 454 drop local.get 455 drop local.get 456 drop local.get 457 drop local.get 458 drop local.get 459 drop
    local.get 460 drop local.get 461 drop local.get 462 drop local.get 463 drop local.get 464 drop local.get 465 drop local.get 466 drop local.get 467 drop local.get 468 drop local.get 469 drop
    local.get 470 drop local.get 471 drop local.get 472 drop local.get 473 drop local.get 474 drop local.get 475 drop local.get 476 drop local.get 477 drop local.get 478 drop local.get 479 drop
    local.get 480 drop local.get 481 drop local.get 482 drop local.get 483 drop local.get 484 drop local.get 485 drop local.get 486 drop local.get 487 drop local.get 488 drop local.get 489 drop
    local.get 490 drop local.get 491 drop local.get 492 drop local.get 493 drop local.get 494 drop local.get 495 drop local.get 496 drop local.get 497 drop local.get 498 drop local.get 499 drop
    local.get 500 drop local.get 501 drop local.get 502 drop local.get 503 drop local.get 504 drop local.get 505 drop local.get 506 drop local.get 507 drop local.get 508 drop local.get 509 drop
    local.get 510 drop local.get 511 drop local.get 512 drop local.get 513 drop local.get 514 drop local.get 515 drop local.get 516 drop local.get 517 drop local.get 518 drop local.get 519 drop
    local.get 520 drop local.get 521 drop local.get 522 drop local.get 523 drop local.get 524 drop local.get 525 drop local.get 526 drop local.get 527 drop local.get 528 drop local.get 529 drop
    local.get 530 drop local.get 531 drop local.get 532 drop local.get 533 drop local.get 534 drop local.get 535 drop local.get 536 drop local.get 537 drop local.get 538 drop local.get 539 drop
    local.get 540 drop local.get 541 drop local.get 542 drop local.get 543 drop local.get 544 drop local.get 545 drop local.get 546 drop local.get 547 drop local.get 548 drop local.get 549 drop
    local.get 550 drop local.get 551 drop local.get 552 drop local.get 553 drop local.get 554 drop local.get 555 drop local.get 556 drop local.get 557 drop local.get 558 drop local.get 559 drop
    local.get 560 drop local.get 561 drop local.get 562 drop local.get 563 drop local.get 564 drop local.get 565 drop local.get 566 drop local.get 567 drop local.get 568 drop local.get 569 drop
    local.get 570 drop local.get 571 drop local.get 572 drop local.get 573 drop local.get 574 drop local.get 575 drop local.get 576 drop local.get 577 drop local.get 578 drop local.get 579 drop
    local.get 580 drop local.get 581 drop local.get 582 drop local.get 583 drop local.get 584 drop local.get 585 drop local.get 586 drop local.get 587 drop local.get 588 drop local.get 589 drop
    local.get 590 drop local.get 591 drop local.get 592 drop local.get 593 drop local.get 594 drop local.get 595 drop local.get 596 drop local.get 597 drop local.get 598 drop local.get 599 drop
    local.get 600 drop local.get 601 drop local.get 602 drop local.get 603 drop local.get 604 drop local.get 605 drop local.get 606 drop local.get 607 drop local.get 608 drop local.get 609 drop
    local.get 610 drop local.get 611 drop local.get 612 drop local.get 613 drop local.get 614 drop local.get 615 drop local.get 616 drop local.get 617 drop local.get 618 drop local.get 619 drop
    local.get 620 drop local.get 621 drop local.get 622 drop local.get 623 drop local.get 624 drop local.get 625 drop local.get 626 drop local.get 627 drop local.get 628 drop local.get 629 drop
    local.get 630 drop local.get 631 drop local.get 632 drop local.get 633 drop local.get 634 drop local.get 635 drop local.get 636 drop local.get 637 drop local.get 638 drop local.get 639 drop
    local.get 640 drop local.get 641 drop local.get 642 drop local.get 643 drop local.get 644 drop local.get 645 drop local.get 646 drop local.get 647 drop local.get 648 drop local.get 649 drop
    local.get 650 drop local.get 651 drop local.get 652 drop local.get 653 drop local.get 654 drop local.get 655 drop local.get 656 drop local.get 657 drop local.get 658 drop local.get 659 drop
    local.get 660 drop local.get 661 drop local.get 662 drop local.get 663 drop local.get 664 drop local.get 665 drop local.get 666 drop local.get 667 drop local.get 668 drop local.get 669 drop
    local.get 670 drop local.get 671 drop local.get 672 drop local.get 673 drop local.get 674 drop local.get 675 drop local.get 676 drop local.get 677 drop local.get 678 drop local.get 679 drop
    local.get 680 drop local.get 681 drop local.get 682 drop local.get 683 drop local.get 684 drop local.get 685 drop local.get 686 drop local.get 687 drop local.get 688 drop local.get 689 drop
    local.get 690 drop local.get 691 drop local.get 692 drop local.get 693 drop local.get 694 drop local.get 695 drop local.get 696 drop local.get 697 drop local.get 698 drop local.get 699 drop
    local.get 700 drop local.get 701 drop local.get 702 drop local.get 703 drop local.get 704 drop local.get 705 drop local.get 706 drop local.get 707 drop local.get 708 drop local.get 709 drop
    local.get 710 drop local.get 711 drop local.get 712 drop local.get 713 drop local.get 714 drop local.get 715 drop local.get 716 drop local.get 717 drop local.get 718 drop local.get 719 drop
    local.get 720 drop local.get 721 drop local.get 722 drop local.get 723 drop local.get 724 drop local.get 725 drop local.get 726 drop local.get 727 drop local.get 728 drop local.get 729 drop
    local.get 730 drop local.get 731 drop local.get 732 drop local.get 733 drop local.get 734 drop local.get 735 drop local.get 736 drop local.get 737 drop local.get 738 drop local.get 739 drop
    local.get 740 drop local.get 741 drop local.get 742 drop local.get 743 drop local.get 744 drop local.get 745 drop local.get 746 drop local.get 747 drop local.get 748 drop local.get 749 drop
    local.get 750 drop local.get 751 drop local.get 752 drop local.get 753 drop local.get 754 drop local.get 755 drop local.get 756 drop local.get 757 drop local.get 758 drop local.get 759 drop
    local.get 760 drop local.get 761 drop local.get 762 drop local.get 763 drop local.get 764 drop local.get 765 drop local.get 766 drop local.get 767 drop local.get 768 drop local.get 769 drop
    local.get 770 drop local.get 771 drop local.get 772 drop local.get 773 drop local.get 774 drop local.get 775 drop local.get 776 drop local.get 777 drop local.get 778 drop local.get 779 drop
    local.get 780 drop local.get 781 drop local.get 782 drop local.get 783 drop local.get 784 drop local.get 785 drop local.get 786 drop local.get 787 drop local.get 788 drop local.get 789 drop
    local.get 790 drop local.get 791 drop local.get 792 drop local.get 793 drop local.get 794 drop local.get 795 drop local.get 796 drop local.get 797 drop local.get 798 drop local.get 799 drop
    local.get 800 drop local.get 801 drop local.get 802 drop local.get 803 drop local.get 804 drop local.get 805 drop local.get 806 drop local.get 807 drop local.get 808 drop local.get 809 drop
    local.get 810 drop local.get 811 drop local.get 812 drop local.get 813 drop local.get 814 drop local.get 815 drop local.get 816 drop local.get 817 drop local.get 818 drop local.get 819 drop
    local.get 820 drop local.get 821 drop local.get 822 drop local.get 823 drop local.get 824 drop local.get 825 drop local.get 826 drop local.get 827 drop local.get 828 drop local.get 829 drop
    local.get 830 drop local.get 831 drop local.get 832 drop local.get 833 drop local.get 834 drop local.get 835 drop local.get 836 drop local.get 837 drop local.get 838 drop local.get 839 drop
    local.get 840 drop local.get 841 drop local.get 842 drop local.get 843 drop local.get 844 drop local.get 845 drop local.get 846 drop local.get 847 drop local.get 848 drop local.get 849 drop
    local.get 850 drop local.get 851 drop local.get 852 drop local.get 853 drop local.get 854 drop local.get 855 drop local.get 856 drop local.get 857 drop local.get 858 drop local.get 859 drop
    local.get 860 drop local.get 861 drop local.get 862 drop local.get 863 drop local.get 864 drop local.get 865 drop local.get 866 drop local.get 867 drop local.get 868 drop local.get 869 drop
    local.get 870 drop local.get 871 drop local.get 872 drop local.get 873 drop local.get 874 drop local.get 875 drop local.get 876 drop local.get 877 drop local.get 878 drop local.get 879 drop
    local.get 880 drop local.get 881 drop local.get 882 drop local.get 883 drop local.get 884 drop local.get 885 drop local.get 886 drop local.get 887 drop local.get 888 drop local.get 889 drop
    local.get 890 drop local.get 891 drop local.get 892 drop local.get 893 drop local.get 894 drop local.get 895 drop local.get 896 drop local.get 897 drop local.get 898 drop local.get 899 drop
    local.get 900 drop local.get 901 drop local.get 902 drop local.get 903 drop local.get 904 drop local.get 905 drop local.get 906 drop local.get 907 drop local.get 908 drop local.get 909 drop
    local.get 910 drop local.get 911 drop local.get 912 drop local.get 913 drop local.get 914 drop local.get 915 drop local.get 916 drop local.get 917 drop local.get 918 drop local.get 919 drop
    local.get 920 drop local.get 921 drop local.get 922 drop local.get 923 drop local.get 924 drop local.get 925 drop local.get 926 drop local.get 927 drop local.get 928 drop local.get 929 drop
    local.get 930 drop local.get 931 drop local.get 932 drop local.get 933 drop local.get 934 drop local.get 935 drop local.get 936 drop local.get 937 drop local.get 938 drop local.get 939 drop
    local.get 940 drop local.get 941 drop local.get 942 drop local.get 943 drop local.get 944 drop local.get 945 drop local.get 946 drop local.get 947 drop local.get 948 drop local.get 949 drop
    local.get 950 drop local.get 951 drop local.get 952 drop local.get 953 drop local.get 954 drop local.get 955 drop local.get 956 drop local.get 957 drop local.get 958 drop local.get 959 drop
    local.get 960 drop local.get 961 drop local.get 962 drop local.get 963 drop local.get 964 drop local.get 965 drop local.get 966 drop local.get 967 drop local.get 968 drop local.get 969 drop
    local.get 970 drop local.get 971 drop local.get 972 drop local.get 973 drop local.get 974 drop local.get 975 drop local.get 976 drop local.get 977 drop local.get 978 drop local.get 979 drop
    local.get 980 drop local.get 981 drop local.get 982 drop local.get 983 drop local.get 984 drop local.get 985 drop local.get 986 drop local.get 987 drop local.get 988 drop local.get 989 drop
    local.get 990 drop local.get 991 drop local.get 992 drop local.get 993 drop local.get 994 drop local.get 995 drop local.get 996 drop local.get 997 drop local.get 998 drop local.get 999 drop
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end
    end end end end end end end end end end end end end end end end end end end end end end end end end))
