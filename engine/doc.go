// Package engine is EventVault's use-case layer: it checks policy, seals
// events with their stream's key on append and opens them on read. It joins
// a store (which sees only ciphertext) and the keyring (which alone holds
// unwrapped keys); neither knows the other. Events serves appends and
// reads, Erasure shreds and erases, Rotation rotates keys; each depends on
// small interfaces, defined here, that crypto's types implement.
package engine
