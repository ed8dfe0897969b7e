# Runs a libFuzzer target for SECONDS on a scratch copy of CORPUS (in WORK),
# so the committed seeds are never modified. Fails when the fuzzer does.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
file(GLOB seeds ${CORPUS}/*)
file(COPY ${seeds} DESTINATION ${WORK})
execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -timeout=10 -print_final_stats=1
          ${WORK}
  WORKING_DIRECTORY ${WORK}/..
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${rc}); crash inputs are in ${WORK}/..")
endif()
