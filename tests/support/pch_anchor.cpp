// tests/support/pch_anchor.cpp: the translation unit that compiles the tests' shared precompiled
// header (tests/CMakeLists.txt, WEFT_TEST_PCH); it has no code of its own.
