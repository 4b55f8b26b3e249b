// weft/optim.hpp: optimizers, parameter groups, learning-rate schedules, gradient clipping, and
// mixed precision (fp32 master weights, loss scaling).
#pragma once


#include "optim/adamw.hpp"
#include "optim/clip.hpp"
#include "optim/grad_scaler.hpp"
#include "optim/master_weights.hpp"
#include "optim/optimizer.hpp"
#include "optim/param_groups.hpp"
#include "optim/schedule.hpp"
#include "optim/sgd.hpp"
