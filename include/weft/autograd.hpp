// weft/autograd.hpp: reverse-mode differentiation: the tape, grad mode, gradient checking.
// (Every differentiable function records itself; this header adds nothing to call, except
// gradcheck, but is the place to start reading.)
#pragma once

#include "autograd/grad_mode.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/tape.hpp"
#include "expr.hpp"
