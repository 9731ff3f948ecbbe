// being written
#pragma once
