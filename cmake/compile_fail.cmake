# Runs one tests/compile_fail/*.cpp case (see tests/CMakeLists.txt):
#   cmake -DCOMPILER=<c++> -DSOURCE=<file.cpp> -DINCLUDE_DIR=<repo>/include
#         [-DSYSTEM_INCLUDE_DIRS=<dir>|<dir>...] [-DIMPLICIT_INCLUDE_DIRS=<dir>|...]
#         -P compile_fail.cmake
# Passes only if the compiler rejects the file AND its output matches the
# CMake regular expression on the file's first line:
#   // EXPECT-ERROR: <regex>
# The regex is matched anywhere in stdout+stderr (run with LC_ALL=C, so GCC
# quotes with plain 'quotes').
cmake_minimum_required(VERSION 3.25)

foreach(var COMPILER SOURCE INCLUDE_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "compile_fail.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${SOURCE}" _text LIMIT 4096)
string(FIND "${_text}" "\n" _eol)
if(_eol GREATER_EQUAL 0)
  string(SUBSTRING "${_text}" 0 ${_eol} _first_line)
else()
  set(_first_line "${_text}")
endif()
string(REGEX REPLACE "\r$" "" _first_line "${_first_line}")
if(NOT _first_line MATCHES "^//[ \t]*EXPECT-ERROR:[ \t]*(.*[^ \t])[ \t]*$")
  message(FATAL_ERROR
    "${SOURCE}: the first line must be '// EXPECT-ERROR: <regex>', found:\n  ${_first_line}")
endif()
set(_regex "${CMAKE_MATCH_1}")

set(_sys_flags)
string(REPLACE "|" ";" _implicit_dirs "${IMPLICIT_INCLUDE_DIRS}")
if(DEFINED SYSTEM_INCLUDE_DIRS AND NOT SYSTEM_INCLUDE_DIRS STREQUAL "")
  string(REPLACE "|" ";" _sys_dirs "${SYSTEM_INCLUDE_DIRS}")
  list(REMOVE_DUPLICATES _sys_dirs)
  foreach(dir IN LISTS _sys_dirs)
    # Skip the compiler's own folders (e.g. /usr/include): repeating them as
    # -isystem breaks libstdc++'s #include_next.
    if(NOT dir STREQUAL "" AND NOT dir IN_LIST _implicit_dirs)
      list(APPEND _sys_flags "-isystem" "${dir}")
    endif()
  endforeach()
endif()

set(_cmd "${COMPILER}" -std=c++20 -fsyntax-only -fdiagnostics-color=never
  "-I${INCLUDE_DIR}" ${_sys_flags} "${SOURCE}")
string(JOIN " " _shown ${_cmd})
message("compile_fail: ${_shown}")
message("compile_fail: expecting an error matching: ${_regex}")
execute_process(
  COMMAND "${CMAKE_COMMAND}" -E env LC_ALL=C ${_cmd}
  RESULT_VARIABLE _rc
  OUTPUT_VARIABLE _out
  ERROR_VARIABLE _out)
message("----- compiler output (exit ${_rc}) -----\n${_out}-----")

if(_rc EQUAL 0)
  message(FATAL_ERROR "FAIL: ${SOURCE} compiled, but it must be rejected")
endif()
if(NOT _out MATCHES "${_regex}")
  message(FATAL_ERROR
    "FAIL: ${SOURCE} was rejected, but not with an error matching '${_regex}'")
endif()
message("PASS: rejected with an error matching '${_regex}'")
