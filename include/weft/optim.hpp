// weft/optim.hpp: optimizers, parameter groups, learning-rate schedules, gradient clipping.
#pragma once


#include "optim/adamw.hpp"
#include "optim/clip.hpp"
#include "optim/optimizer.hpp"
#include "optim/param_groups.hpp"
#include "optim/schedule.hpp"
#include "optim/sgd.hpp"
